//! Count, duration and errors of every CRI call attempt, by operation (and
//! gRPC code): `podstart_runtime_operations_*`; each attempt's outcome also
//! goes to the runtime health tracker (`health.rs`).
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::{
    CriCall, CriError, Reply,
    health::{Outcome, RuntimeHealth},
};
use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
    health: RuntimeHealth,
}

impl MetricsLayer {
    pub fn new(metrics: Metrics, health: RuntimeHealth) -> MetricsLayer {
        MetricsLayer { metrics, health }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Record<S>;
    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record<S> {
    inner: S,
    metrics: Metrics,
    health: RuntimeHealth,
}

impl<S> Service<CriCall> for Record<S>
where
    S: Service<CriCall, Response = Reply, Error = CriError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = CriError;
    type Future = BoxFuture<'static, Result<Reply, CriError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CriError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: CriCall) -> Self::Future {
        let op = call.op;
        let metrics = self.metrics.clone();
        let health = self.health.clone();
        let started = Instant::now();
        let fut = self.inner.call(call);
        Box::pin(async move {
            let result = fut.await;
            let code = result
                .as_ref()
                .map_or_else(CriError::code, |_| tonic::Code::Ok);
            metrics.record_runtime_operation(op.name(), code, started.elapsed());
            health.record(
                op,
                Outcome::of(result.as_ref().err()),
                std::time::Instant::now(),
            );
            result
        })
    }
}
