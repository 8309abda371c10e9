//! Tower middleware, one concern per file, each a `Layer` + `Service` pair.
//! The CRI layers work on [`crate::cri::CriCall`]; the stack is assembled
//! in one place, `crate::cri::stack`.
//!
//! - `timeout`: the per-operation deadline, failing with
//!   `CriError::Timeout` naming the operation;
//! - `retry`: which failures are retried, with capped, jittered back-off
//!   and a budget;
//! - `metrics`: count, duration and errors per operation;
//! - `trace`: a span per call attempt;
//! - `grpc_metrics`: podstart's own gRPC server requests by method and code.
pub mod grpc_metrics;
pub mod metrics;
pub mod retry;
pub mod timeout;
pub mod trace;
