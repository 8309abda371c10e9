//! A span per CRI call attempt, with the operation, the attempt number and
//! the resulting gRPC code; child of whatever span the caller is in (a
//! StartPod step).
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{CriCall, CriError, Reply};

#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl TraceLayer {
    pub fn new() -> TraceLayer {
        TraceLayer
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Service<CriCall> for Trace<S>
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
        let span = tracing::info_span!(
            "cri",
            otel.name = %format_args!("cri {}", call.op),
            operation = call.op.name(),
            attempt = call.attempt,
            code = tracing::field::Empty,
        );
        let fut = self.inner.call(call);
        let record = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                let code = result
                    .as_ref()
                    .map_or_else(CriError::code, |_| tonic::Code::Ok);
                record.record("code", tracing::field::debug(code));
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "CRI call failed");
                }
                result
            }
            .instrument(span),
        )
    }
}
