//! podstart's integration tests, one binary grouped by concern. Most run
//! the API in-process against the simulated runtime (`common`); `cli`,
//! `serve` and `observability` run the `podstart` binary as a process
//! (`process`). The end-to-end tests against containerd are the separate
//! `e2e` target.
//!
//! Tests here share one process: none may change process-wide state
//! (environment variables, the global tracing subscriber, a global metrics
//! registry). `image_secrets` captures the log with a thread-local
//! subscriber, which sees every line of its test because the current-thread
//! runtime of `#[tokio::test]` runs each task the harness spawns on that
//! thread.

mod certs;
mod common;
mod direct;
mod net;
mod process;

mod admission;
mod ahead;
mod attach;
mod authz;
mod bounds;
mod cli;
mod hooks;
mod hostile;
mod identity;
mod image_secrets;
mod images;
mod listen;
mod manifests;
mod middleware;
mod node;
mod observability;
mod paths;
mod probes;
mod readiness;
mod recovery;
mod round_trips;
mod scale;
mod semantics;
mod serve;
mod start_flow;
mod tls;
mod validation;
mod volumes;
mod watcher;
