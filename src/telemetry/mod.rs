//! Observability: Prometheus metrics, the metrics/health HTTP port, and log
//! set-up.
mod http;
mod metrics;

pub use http::serve as serve_http;
pub use metrics::{InFlight, Metrics};

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber: `level` is an EnvFilter
/// directive (`info`, `podstart=debug`, ...), logs go to stderr.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber already installed (tests) is fine.
    drop(result);
}
