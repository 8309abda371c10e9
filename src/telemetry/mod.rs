//! Observability: Prometheus metrics, the metrics/health HTTP port, logs
//! and OpenTelemetry traces.
mod http;
mod metrics;
mod tracing_setup;

pub use http::{Readiness, serve as serve_http};
pub use metrics::{InFlight, Metrics, size_bucket};
pub use tracing_setup::{
    LogFormat, TracingError, TracingGuard, init as init_tracing, remote_context,
};
