//! Deadline per CRI call. Unlike tower's own timeout, which would reach
//! callers as an opaque error (UNKNOWN), it fails with
//! `CriError::Timeout { op, after }`: DEADLINE_EXCEEDED naming the
//! operation. The deadline covers the wait for the inner service to be
//! ready (a concurrency slot), not only the call: `poll_ready` is always
//! ready here, and each call waits for readiness on its own clone of the
//! inner service.
//!
//! CRI deadlines are long (minutes) and nearly never reached, so instead of
//! a tokio timer per call (measurably costly on the start path) calls share
//! one clock that ticks every 50 ms and fires the deadlines that have
//! passed: a deadline fires up to one tick late.
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{sync::oneshot, time::Instant};
use tower::{Layer, Service, ServiceExt};

use super::{CriCall, CriError, Reply};

/// How often the shared clock fires passed deadlines.
const TICK: Duration = Duration::from_millis(50);

#[derive(Clone, Default)]
pub struct TimeoutLayer {
    clock: Option<Arc<Clock>>,
}

impl std::fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("shared_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl TimeoutLayer {
    /// Inside a tokio runtime, deadlines share one clock task (it ends when
    /// the layer and its services are gone); outside, each call gets its own
    /// timer.
    pub fn new() -> TimeoutLayer {
        TimeoutLayer {
            clock: Clock::start(),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            clock: self.clock.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    clock: Option<Arc<Clock>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("shared_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> Service<CriCall> for Timeout<S>
where
    S: Service<CriCall, Response = Reply, Error = CriError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = CriError;
    type Future = BoxFuture<'static, Result<Reply, CriError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CriError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: CriCall) -> Self::Future {
        let (op, deadline) = (call.op, call.deadline);
        let inner = self.inner.clone();
        let fut = inner.oneshot(call);
        let clock = self.clock.clone();
        Box::pin(async move {
            let Some(after) = deadline else {
                return fut.await;
            };
            let expired = || CriError::Timeout {
                op: op.name(),
                after,
            };
            // A deadline past the clock's range (a caller's grace period
            // of centuries) is no deadline.
            let Some(at) = Instant::now().checked_add(after) else {
                return fut.await;
            };
            match clock {
                Some(clock) => {
                    let (_entry, fired) = clock.register(at);
                    tokio::select! {
                        biased;
                        result = fut => result,
                        _ = fired => Err(expired()),
                    }
                }
                None => tokio::time::timeout(after, fut)
                    .await
                    .unwrap_or_else(|_| Err(expired())),
            }
        })
    }
}

/// Deadlines waiting to fire, by (tick, id).
struct Clock {
    origin: Instant,
    next_id: AtomicU64,
    waiting: Mutex<BTreeMap<(u64, u64), oneshot::Sender<()>>>,
}

/// A registered deadline; dropping it withdraws the deadline.
struct Entry {
    key: (u64, u64),
    clock: Arc<Clock>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.clock.lock().remove(&self.key);
    }
}

impl Clock {
    fn start() -> Option<Arc<Clock>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let clock = Arc::new(Clock {
            origin: Instant::now(),
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(BTreeMap::new()),
        });
        let weak: Weak<Clock> = Arc::downgrade(&clock);
        handle.spawn(async move {
            let mut ticks = tokio::time::interval(TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(clock) = weak.upgrade() else { return };
                clock.fire(Instant::now());
            }
        });
        Some(clock)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u64, u64), oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tick at or after `at`.
    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        since.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    fn register(self: &Arc<Self>, deadline: Instant) -> (Entry, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let key = (
            self.tick_of(deadline),
            self.next_id.fetch_add(1, Ordering::Relaxed),
        );
        self.lock().insert(key, tx);
        (
            Entry {
                key,
                clock: self.clone(),
            },
            rx,
        )
    }

    /// Fires every deadline at or before `now`.
    fn fire(&self, now: Instant) {
        let now_tick = self.since_origin_ticks(now);
        let due = {
            let mut waiting = self.lock();
            let later = waiting.split_off(&(now_tick + 1, 0));
            std::mem::replace(&mut *waiting, later)
        };
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Whole ticks elapsed at `now` (rounded down).
    fn since_origin_ticks(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / TICK.as_nanos()) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

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

    fn dispatch() -> crate::cri::stack::Dispatch {
        crate::cri::stack::Dispatch
    }

    #[tokio::test]
    async fn a_slow_call_fails_with_deadline_exceeded_naming_the_operation() {
        let svc = TimeoutLayer::new().layer(dispatch());
        let err = svc.oneshot(slow(Duration::from_secs(5))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(err.to_string(), "CRI container_status timed out after 20ms");
    }

    #[tokio::test]
    async fn without_a_runtime_each_call_gets_its_own_timer() {
        let layer = std::thread::spawn(TimeoutLayer::new).join().unwrap();
        assert!(layer.clock.is_none());
        let err = layer
            .layer(dispatch())
            .oneshot(slow(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn finished_calls_leave_no_deadline_behind() {
        let layer = TimeoutLayer::new();
        let svc = layer.layer(dispatch());
        for _ in 0..10 {
            svc.clone().oneshot(slow(Duration::ZERO)).await.unwrap();
        }
        let clock = layer.clock.as_ref().unwrap();
        assert!(clock.lock().is_empty());
    }

    #[tokio::test]
    async fn a_deadline_past_the_clock_is_none() {
        for after in [Duration::MAX, Duration::from_secs(i64::MAX as u64)] {
            let call = CriCall::new(Operation::StopContainer, Some(after), || {
                Box::pin(async { Ok(Box::new(()) as Reply) })
            });
            let svc = TimeoutLayer::new().layer(dispatch());
            assert!(svc.oneshot(call).await.is_ok());
        }
    }

    #[tokio::test]
    async fn waiting_for_a_slot_counts_against_the_deadline() {
        let svc = TimeoutLayer::new().layer(tower::limit::ConcurrencyLimit::new(dispatch(), 1));
        let holder = CriCall::new(Operation::PullImage, None, || {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Box::new(()) as Reply)
            })
        });
        let busy = tokio::spawn(svc.clone().oneshot(holder));
        tokio::task::yield_now().await;
        let err = svc.oneshot(slow(Duration::ZERO)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        busy.abort();
    }

    #[tokio::test]
    async fn a_fast_call_passes() {
        let svc = TimeoutLayer::new().layer(dispatch());
        assert!(svc.oneshot(slow(Duration::ZERO)).await.is_ok());
    }
}
