//! The one tower stack every CRI call goes through, built here and nowhere
//! else. Outermost first:
//!
//! 1. retry — outermost, so each attempt gets its own span, metrics record
//!    and deadline;
//! 2. trace — one span per attempt, enclosing what is measured;
//! 3. metrics — count, duration and code per attempt;
//! 4. timeout — the operation's deadline, which also covers waiting for a
//!    concurrency slot;
//! 5. slot wait — calls waiting for a slot, for the health tracker
//!    (`health.rs`, also fed by the metrics layer);
//! 6. concurrency limit — at most this many calls at the runtime at once;
//! 7. dispatch — sends the call over the channel.
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Service, ServiceBuilder, retry::RetryLayer, util::BoxCloneSyncService};

use super::{
    CriCall, CriError, Reply,
    health::{RuntimeHealth, SlotWaitLayer},
    metrics::MetricsLayer,
    retry::{RetryPolicy, RetrySettings},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use crate::telemetry::Metrics;

/// A CRI call service with the whole stack around it.
pub type CriService = BoxCloneSyncService<CriCall, Reply, CriError>;

/// Default for the most CRI calls in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

pub fn build(
    metrics: Metrics,
    health: RuntimeHealth,
    retry: RetrySettings,
    max_concurrency: usize,
) -> CriService {
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new(retry, metrics.clone())))
        .layer(TraceLayer::new())
        .layer(MetricsLayer::new(metrics, health.clone()))
        .layer(TimeoutLayer::new())
        .layer(SlotWaitLayer::new(health))
        .concurrency_limit(max_concurrency.max(1))
        .service(Dispatch);
    BoxCloneSyncService::new(stack)
}

/// No middleware at all: only to measure what the stack costs.
pub fn bare() -> CriService {
    BoxCloneSyncService::new(Dispatch)
}

/// The innermost service: sends the call, naming the operation on failure.
#[derive(Debug, Clone, Copy)]
pub struct Dispatch;

impl Service<CriCall> for Dispatch {
    type Response = Reply;
    type Error = CriError;
    type Future = BoxFuture<'static, Result<Reply, CriError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CriError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: CriCall) -> Self::Future {
        let op = call.op.name();
        let fut = call.send();
        Box::pin(async move { fut.await.map_err(|status| CriError::Call { op, status }) })
    }
}
