//! Deadline per CRI call. Unlike tower's own timeout, which would reach
//! callers as an opaque error (UNKNOWN), it fails with
//! `CriError::Timeout { op, after }`: DEADLINE_EXCEEDED naming the
//! operation.
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::cri::{CriCall, CriError, Reply};

#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer;

impl TimeoutLayer {
    pub fn new() -> TimeoutLayer {
        TimeoutLayer
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
}

impl<S> Service<CriCall> for Timeout<S>
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
        let (op, deadline) = (call.op, call.deadline);
        let fut = self.inner.call(call);
        Box::pin(async move {
            match deadline {
                None => fut.await,
                Some(after) => {
                    tokio::time::timeout(after, fut)
                        .await
                        .unwrap_or(Err(CriError::Timeout {
                            op: op.name(),
                            after,
                        }))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::cri::Operation;

    fn slow(after: Duration) -> CriCall {
        CriCall::new(
            Operation::ContainerStatus,
            Some(Duration::from_millis(20)),
            move || {
                Box::pin(async move {
                    tokio::time::sleep(after).await;
                    Ok(Box::new(()) as Reply)
                })
            },
        )
    }

    fn dispatch() -> impl Service<
        CriCall,
        Response = Reply,
        Error = CriError,
        Future = BoxFuture<'static, Result<Reply, CriError>>,
    > + Clone {
        service_fn(
            |c: CriCall| -> BoxFuture<'static, Result<Reply, CriError>> {
                let op = c.op.name();
                let fut = c.send();
                Box::pin(async move { fut.await.map_err(|status| CriError::Call { op, status }) })
            },
        )
    }

    #[tokio::test]
    async fn a_slow_call_fails_with_deadline_exceeded_naming_the_operation() {
        let svc = TimeoutLayer::new().layer(dispatch());
        let err = svc.oneshot(slow(Duration::from_secs(5))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(err.to_string(), "CRI container_status timed out after 20ms");
    }

    #[tokio::test]
    async fn a_fast_call_passes() {
        let svc = TimeoutLayer::new().layer(dispatch());
        assert!(svc.oneshot(slow(Duration::ZERO)).await.is_ok());
    }
}
