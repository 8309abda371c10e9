//! Which failed CRI calls are tried again, and when. The decision (is this
//! failure worth another attempt for this operation?) is separate from the
//! waiting (capped exponential back-off with full jitter) and from the
//! budget (a share of recent traffic, so a dead runtime is not hammered).
use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tower::retry::budget::{Budget, TpsBudget};

use super::{CriCall, CriError, Reply, Retry};
use crate::telemetry::Metrics;

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Back-off before the second attempt; doubles after each.
    pub base: Duration,
    /// Longest back-off.
    pub cap: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        }
    }
}

/// The `tower::retry::Policy` for CRI calls. One clone per call: `tried`
/// counts that call's attempts.
#[derive(Clone)]
pub struct RetryPolicy {
    settings: RetrySettings,
    budget: Arc<TpsBudget>,
    metrics: Metrics,
    deposited: bool,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("settings", &self.settings)
            .field("deposited", &self.deposited)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings, metrics: Metrics) -> RetryPolicy {
        RetryPolicy {
            settings,
            // Retries may add 20% to the last 10 s of calls, plus 5 per
            // second whatever the traffic.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 5, 0.2)),
            metrics,
            deposited: false,
        }
    }

    /// With a budget of exactly `retries` retries in all (tests).
    pub fn with_budget(settings: RetrySettings, metrics: Metrics, budget: TpsBudget) -> Self {
        RetryPolicy {
            settings,
            budget: Arc::new(budget),
            metrics,
            deposited: false,
        }
    }

    /// The wait before attempt `attempt + 1`: a random time up to
    /// `base * 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .settings
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.settings.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Is `err` worth another attempt of an operation of class `retry`?
pub fn retryable(retry: Retry, err: &CriError) -> bool {
    match retry {
        Retry::Never => false,
        Retry::ConnectOnly => err.is_connect_failure(),
        Retry::Read | Retry::Idempotent => match err {
            CriError::Timeout { .. } => true,
            CriError::Call { status, .. } => status.code() == tonic::Code::Unavailable,
            CriError::InvalidEndpoint { .. } | CriError::InvalidResponse { .. } => false,
        },
    }
}

impl tower::retry::Policy<CriCall, Reply, CriError> for RetryPolicy {
    type Future = BoxFuture<'static, ()>;

    fn retry(
        &mut self,
        call: &mut CriCall,
        result: &mut Result<Reply, CriError>,
    ) -> Option<Self::Future> {
        let err = result.as_ref().err()?;
        if call.attempt >= self.settings.max_attempts || !retryable(call.op.retry(), err) {
            return None;
        }
        if !self.budget.withdraw() {
            tracing::debug!(operation = call.op.name(), "retry budget exhausted");
            return None;
        }
        let wait = self.backoff(call.attempt);
        tracing::debug!(operation = call.op.name(), attempt = call.attempt, ?wait, error = %err, "retrying CRI call");
        self.metrics.runtime_retry(call.op.name());
        call.attempt += 1;
        Some(Box::pin(tokio::time::sleep(wait)))
    }

    fn clone_request(&mut self, call: &CriCall) -> Option<CriCall> {
        if !self.deposited {
            // Every first attempt earns the budget its share.
            self.budget.deposit();
            self.deposited = true;
        }
        Some(call.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tower::{Layer, ServiceExt, retry::RetryLayer};

    use super::*;
    use crate::cri::Operation;

    fn unavailable(message: &str) -> tonic::Status {
        tonic::Status::unavailable(message.to_string())
    }

    /// What tonic makes of a connection the runtime refused.
    fn refused() -> tonic::Status {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(io))))
    }

    fn dispatch() -> crate::cri::stack::Dispatch {
        crate::cri::stack::Dispatch
    }

    /// A call that fails with `fail` for its first `failures` sends.
    fn flaky(op: Operation, failures: u32, fail: tonic::Status) -> (CriCall, Arc<AtomicU32>) {
        let sent = Arc::new(AtomicU32::new(0));
        let count = sent.clone();
        let call = CriCall::new(op, None, move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let fail = fail.clone();
            Box::pin(async move {
                if n < failures {
                    Err(fail)
                } else {
                    Ok(Box::new(n) as Reply)
                }
            })
        });
        (call, sent)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            RetrySettings {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
                ..Default::default()
            },
            Metrics::new().unwrap(),
        )
    }

    #[tokio::test]
    async fn unavailable_twice_then_ok_is_retried_and_succeeds() {
        let (call, sent) = flaky(
            Operation::ListContainers,
            2,
            unavailable("runtime restarting"),
        );
        let svc = RetryLayer::new(policy()).layer(dispatch());
        let reply = svc.oneshot(call).await.expect("third attempt succeeds");
        assert_eq!(*reply.downcast::<u32>().unwrap(), 2);
        assert_eq!(sent.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_capped() {
        let (call, sent) = flaky(Operation::Version, 100, unavailable("down"));
        let svc = RetryLayer::new(policy()).layer(dispatch());
        assert!(svc.oneshot(call).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn creates_are_never_retried() {
        for op in [Operation::RunPodSandbox, Operation::CreateContainer] {
            let (call, sent) = flaky(op, 1, refused());
            let svc = RetryLayer::new(policy()).layer(dispatch());
            assert!(svc.oneshot(call).await.is_err());
            assert_eq!(sent.load(Ordering::SeqCst), 1, "{op}");
        }
    }

    #[tokio::test]
    async fn start_container_is_retried_only_when_the_connection_failed() {
        let (call, sent) = flaky(Operation::StartContainer, 1, unavailable("runtime said no"));
        let svc = RetryLayer::new(policy()).layer(dispatch());
        assert!(svc.oneshot(call).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 1);

        // An answer that merely reads like one is still an answer.
        let (call, sent) = flaky(
            Operation::StartContainer,
            1,
            unavailable("tcp connect error: Connection refused (os error 111)"),
        );
        let svc = RetryLayer::new(policy()).layer(dispatch());
        assert!(svc.oneshot(call).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 1);

        let (call, sent) = flaky(Operation::StartContainer, 1, refused());
        let svc = RetryLayer::new(policy()).layer(dispatch());
        assert!(svc.oneshot(call).await.is_ok());
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let (call, sent) = flaky(
            Operation::ContainerStatus,
            1,
            tonic::Status::not_found("gone"),
        );
        let svc = RetryLayer::new(policy()).layer(dispatch());
        assert!(svc.oneshot(call).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_budget_stops_retries() {
        // No per-second allowance and no share of traffic: no retries at all.
        let policy = RetryPolicy::with_budget(
            RetrySettings::default(),
            Metrics::new().unwrap(),
            TpsBudget::new(Duration::from_secs(10), 0, 0.0),
        );
        let (call, sent) = flaky(Operation::Version, 2, unavailable("down"));
        let svc = RetryLayer::new(policy).layer(dispatch());
        assert!(svc.oneshot(call).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::new(RetrySettings::default(), Metrics::new().unwrap());
        for attempt in 1..20 {
            let d = p.backoff(attempt);
            assert!(d <= Duration::from_secs(2), "{attempt}: {d:?}");
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(spread.len() > 1, "jittered");
        assert!((0..50).all(|_| p.backoff(1) <= Duration::from_millis(100)));
    }
}
