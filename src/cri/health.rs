//! How the runtime connection is doing, as the stack sees it, for readiness:
//! whether calls of one operation keep timing out, and whether calls wait
//! too long for one of the stack's concurrency slots (the connection is
//! saturated). The metrics layer records each attempt's outcome
//! (`record`); `SlotWaitLayer`, just outside the concurrency limit, records
//! the calls waiting for a slot. `RuntimeHealth::verdict` is read by the
//! readiness loop (`server.rs`).
//!
//! Lock-free on the path of a call that neither times out nor waits: one
//! atomic load.
use std::{
    collections::BTreeSet,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tower::{Layer, Service};

use super::{CriCall, CriError, Operation};

/// When the connection counts as unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// This many timed-out attempts in a row of one operation (none
    /// answered in between) make it unhealthy; 0 turns the check off.
    pub timeouts_in_a_row: u32,
    /// Timeouts older than this no longer count: an operation nobody calls
    /// any more cannot show that it recovered.
    pub timeout_window: Duration,
    /// A call waiting longer than this for a concurrency slot makes it
    /// unhealthy (saturated); zero turns the check off.
    pub slot_wait: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            timeouts_in_a_row: 3,
            timeout_window: Duration::from_secs(60),
            slot_wait: Duration::from_secs(10),
        }
    }
}

/// Why the connection is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// The last `in_a_row` attempts of `op` timed out.
    TimingOut { op: &'static str, in_a_row: u32 },
    /// The oldest of `waiting` calls has waited `waited` for a slot.
    Saturated { waited: Duration, waiting: usize },
}

impl Unhealthy {
    /// A fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Unhealthy::TimingOut { .. } => "timeouts",
            Unhealthy::Saturated { .. } => "saturated",
        }
    }
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::TimingOut { op, in_a_row } => {
                write!(f, "CRI {op} calls timing out ({in_a_row} in a row)")
            }
            Unhealthy::Saturated { waited, waiting } => write!(
                f,
                "CRI connection saturated: {waiting} calls waiting for a slot, the oldest for {}",
                crate::duration::go(*waited)
            ),
        }
    }
}

/// What one attempt came to, as far as health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime answered (with a reply or an error of its own).
    Answered,
    /// The attempt ran out of time.
    TimedOut,
}

impl Outcome {
    /// Only the stack's own deadline firing is a timeout: the runtime did
    /// not answer in time. A DEADLINE_EXCEEDED the runtime sends (an exec
    /// probe's command outliving its own timeout) is an answer, as is every
    /// other reply or error.
    pub fn of(err: Option<&CriError>) -> Outcome {
        match err {
            Some(CriError::Timeout { .. }) => Outcome::TimedOut,
            _ => Outcome::Answered,
        }
    }
}

const OPERATIONS: usize = Operation::GetContainerEvents as usize + 1;

/// The shared tracker. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct RuntimeHealth {
    inner: Arc<Tracker>,
}

impl fmt::Debug for RuntimeHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHealth")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Tracker {
    settings: HealthSettings,
    /// Times are kept as nanoseconds since this instant.
    origin: Instant,
    /// Per operation: timed-out attempts since its last answer.
    in_a_row: [AtomicU32; OPERATIONS],
    /// Per operation: when its last attempt timed out.
    last_timeout: [AtomicU64; OPERATIONS],
    /// Calls waiting for a slot, by (since, id): the first is the oldest.
    waiting: Mutex<BTreeSet<(u64, u64)>>,
    next_waiter: AtomicU64,
}

impl RuntimeHealth {
    pub fn new(settings: HealthSettings) -> RuntimeHealth {
        RuntimeHealth::starting_at(settings, Instant::now())
    }

    /// A tracker whose clock starts at `origin` (tests pass their own
    /// instants to every method).
    pub fn starting_at(settings: HealthSettings, origin: Instant) -> RuntimeHealth {
        RuntimeHealth {
            inner: Arc::new(Tracker {
                settings,
                origin,
                in_a_row: std::array::from_fn(|_| AtomicU32::new(0)),
                last_timeout: std::array::from_fn(|_| AtomicU64::new(0)),
                waiting: Mutex::new(BTreeSet::new()),
                next_waiter: AtomicU64::new(0),
            }),
        }
    }

    pub fn settings(&self) -> HealthSettings {
        self.inner.settings
    }

    fn since_origin(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.inner.origin).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Records one attempt of `op`.
    pub fn record(&self, op: Operation, outcome: Outcome, now: Instant) {
        let i = op as usize;
        let t = &self.inner;
        match outcome {
            Outcome::Answered => {
                if t.in_a_row[i].load(Ordering::Relaxed) != 0 {
                    t.in_a_row[i].store(0, Ordering::Relaxed);
                }
            }
            Outcome::TimedOut => {
                t.last_timeout[i].store(self.since_origin(now), Ordering::Relaxed);
                t.in_a_row[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A call starts waiting for a slot; it stops when the guard drops.
    pub fn wait_started(&self, now: Instant) -> SlotWaiter {
        let key = (
            self.since_origin(now),
            self.inner.next_waiter.fetch_add(1, Ordering::Relaxed),
        );
        self.lock_waiting().insert(key);
        SlotWaiter {
            key,
            health: self.clone(),
        }
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, u64)>> {
        self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.lock_waiting().len()
    }

    /// Whether the connection is healthy at `now`, and if not, why (the
    /// saturation first: it also explains timeouts).
    pub fn verdict(&self, now: Instant) -> Result<(), Unhealthy> {
        let t = &self.inner;
        let now_ns = self.since_origin(now);
        if !t.settings.slot_wait.is_zero() {
            let waiting = self.lock_waiting();
            if let Some(&(since, _)) = waiting.first() {
                let waited = Duration::from_nanos(now_ns.saturating_sub(since));
                if waited >= t.settings.slot_wait {
                    return Err(Unhealthy::Saturated {
                        waited,
                        waiting: waiting.len(),
                    });
                }
            }
        }
        if t.settings.timeouts_in_a_row == 0 {
            return Ok(());
        }
        let window = u64::try_from(t.settings.timeout_window.as_nanos()).unwrap_or(u64::MAX);
        let worst = ALL
            .iter()
            .map(|&op| {
                let i = op as usize;
                let n = t.in_a_row[i].load(Ordering::Relaxed);
                let last = t.last_timeout[i].load(Ordering::Relaxed);
                (op, n, now_ns.saturating_sub(last) <= window)
            })
            .filter(|&(_, n, recent)| recent && n >= t.settings.timeouts_in_a_row)
            .max_by_key(|&(_, n, _)| n);
        match worst {
            Some((op, in_a_row, _)) => Err(Unhealthy::TimingOut {
                op: op.name(),
                in_a_row,
            }),
            None => Ok(()),
        }
    }
}

/// Every operation, in index order.
const ALL: [Operation; OPERATIONS] = [
    Operation::Version,
    Operation::Status,
    Operation::RunPodSandbox,
    Operation::StopPodSandbox,
    Operation::RemovePodSandbox,
    Operation::PodSandboxStatus,
    Operation::ListPodSandbox,
    Operation::CreateContainer,
    Operation::StartContainer,
    Operation::StopContainer,
    Operation::RemoveContainer,
    Operation::ContainerStatus,
    Operation::ListContainers,
    Operation::ExecSync,
    Operation::ImageStatus,
    Operation::PullImage,
    Operation::RemoveImage,
    Operation::GetContainerEvents,
];

/// One call waiting for a slot; dropping it ends the wait.
#[derive(Debug)]
pub struct SlotWaiter {
    key: (u64, u64),
    health: RuntimeHealth,
}

impl Drop for SlotWaiter {
    fn drop(&mut self) {
        self.health.lock_waiting().remove(&self.key);
    }
}

/// Goes just outside the concurrency limit: a call whose `poll_ready` is
/// pending waits for a slot.
#[derive(Debug, Clone)]
pub struct SlotWaitLayer {
    health: RuntimeHealth,
}

impl SlotWaitLayer {
    pub fn new(health: RuntimeHealth) -> SlotWaitLayer {
        SlotWaitLayer { health }
    }
}

impl<S> Layer<S> for SlotWaitLayer {
    type Service = SlotWait<S>;
    fn layer(&self, inner: S) -> SlotWait<S> {
        SlotWait {
            inner,
            health: self.health.clone(),
            waiter: None,
        }
    }
}

pub struct SlotWait<S> {
    inner: S,
    health: RuntimeHealth,
    waiter: Option<SlotWaiter>,
}

/// A clone is a new caller: it has not started waiting.
impl<S: Clone> Clone for SlotWait<S> {
    fn clone(&self) -> Self {
        SlotWait {
            inner: self.inner.clone(),
            health: self.health.clone(),
            waiter: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for SlotWait<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotWait")
            .field("inner", &self.inner)
            .field("waiting", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Service<CriCall>> Service<CriCall> for SlotWait<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let poll = self.inner.poll_ready(cx);
        if poll.is_pending() {
            if self.waiter.is_none() {
                self.waiter = Some(self.health.wait_started(Instant::now()));
            }
        } else {
            self.waiter = None;
        }
        poll
    }

    fn call(&mut self, call: CriCall) -> S::Future {
        self.waiter = None;
        self.inner.call(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn tracker() -> (RuntimeHealth, Instant) {
        let t0 = Instant::now();
        (
            RuntimeHealth::starting_at(HealthSettings::default(), t0),
            t0,
        )
    }

    #[test]
    fn every_operation_has_its_index() {
        for (i, op) in ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op}");
        }
    }

    #[test]
    fn a_new_tracker_is_healthy() {
        let (h, t0) = tracker();
        assert_eq!(h.verdict(t0 + S), Ok(()));
    }

    #[test]
    fn timeouts_in_a_row_make_it_unhealthy_until_an_answer() {
        let (h, t0) = tracker();
        let op = Operation::ListContainers;
        h.record(op, Outcome::TimedOut, t0 + S);
        h.record(op, Outcome::TimedOut, t0 + 2 * S);
        assert_eq!(h.verdict(t0 + 2 * S), Ok(()), "two are not enough");
        h.record(op, Outcome::TimedOut, t0 + 3 * S);
        let err = h.verdict(t0 + 3 * S).unwrap_err();
        assert_eq!(
            err,
            Unhealthy::TimingOut {
                op: "list_containers",
                in_a_row: 3
            }
        );
        assert_eq!(err.label(), "timeouts");
        assert_eq!(
            err.to_string(),
            "CRI list_containers calls timing out (3 in a row)"
        );
        h.record(op, Outcome::Answered, t0 + 4 * S);
        assert_eq!(h.verdict(t0 + 4 * S), Ok(()));
    }

    #[test]
    fn another_operation_answering_does_not_hide_timeouts() {
        let (h, t0) = tracker();
        for i in 1..=3 {
            h.record(Operation::CreateContainer, Outcome::TimedOut, t0 + i * S);
            h.record(Operation::Status, Outcome::Answered, t0 + i * S);
        }
        assert!(h.verdict(t0 + 3 * S).is_err());
    }

    #[test]
    fn an_answer_between_timeouts_starts_the_count_again() {
        let (h, t0) = tracker();
        let op = Operation::RunPodSandbox;
        for outcome in [
            Outcome::TimedOut,
            Outcome::TimedOut,
            Outcome::Answered,
            Outcome::TimedOut,
            Outcome::TimedOut,
        ] {
            h.record(op, outcome, t0 + S);
        }
        assert_eq!(h.verdict(t0 + S), Ok(()));
    }

    #[test]
    fn old_timeouts_stop_counting_after_the_window() {
        let (h, t0) = tracker();
        for _ in 0..5 {
            h.record(Operation::ContainerStatus, Outcome::TimedOut, t0 + S);
        }
        assert!(h.verdict(t0 + 60 * S).is_err());
        assert_eq!(h.verdict(t0 + 62 * S), Ok(()));
    }

    #[test]
    fn the_worst_operation_is_named() {
        let (h, t0) = tracker();
        for _ in 0..3 {
            h.record(Operation::Status, Outcome::TimedOut, t0);
        }
        for _ in 0..7 {
            h.record(Operation::StartContainer, Outcome::TimedOut, t0);
        }
        assert_eq!(
            h.verdict(t0),
            Err(Unhealthy::TimingOut {
                op: "start_container",
                in_a_row: 7
            })
        );
    }

    #[test]
    fn only_the_stacks_own_deadline_is_a_timeout() {
        let timeout = CriError::Timeout {
            op: "exec_sync",
            after: S,
        };
        assert_eq!(Outcome::of(Some(&timeout)), Outcome::TimedOut);
        assert_eq!(Outcome::of(None), Outcome::Answered);
        for code in [
            tonic::Code::DeadlineExceeded,
            tonic::Code::Unavailable,
            tonic::Code::NotFound,
        ] {
            let answer = CriError::Call {
                op: "exec_sync",
                status: tonic::Status::new(code, "from the runtime"),
            };
            assert_eq!(Outcome::of(Some(&answer)), Outcome::Answered, "{code:?}");
        }
    }

    #[test]
    fn a_long_wait_for_a_slot_is_saturation_until_it_ends() {
        let (h, t0) = tracker();
        let first = h.wait_started(t0);
        let second = h.wait_started(t0 + 5 * S);
        assert_eq!(h.verdict(t0 + 9 * S), Ok(()));
        let err = h.verdict(t0 + 10 * S).unwrap_err();
        assert_eq!(
            err,
            Unhealthy::Saturated {
                waited: 10 * S,
                waiting: 2
            }
        );
        assert_eq!(err.label(), "saturated");
        assert_eq!(
            err.to_string(),
            "CRI connection saturated: 2 calls waiting for a slot, the oldest for 10s"
        );
        drop(first);
        assert_eq!(h.verdict(t0 + 14 * S), Ok(()), "the other waited 9s");
        drop(second);
        assert_eq!(h.waiting(), 0);
        assert_eq!(h.verdict(t0 + 100 * S), Ok(()));
    }

    #[test]
    fn zero_settings_turn_the_checks_off() {
        let t0 = Instant::now();
        let h = RuntimeHealth::starting_at(
            HealthSettings {
                timeouts_in_a_row: 0,
                slot_wait: Duration::ZERO,
                ..HealthSettings::default()
            },
            t0,
        );
        let _w = h.wait_started(t0);
        for _ in 0..10 {
            h.record(Operation::Status, Outcome::TimedOut, t0);
        }
        assert_eq!(h.verdict(t0 + 100 * S), Ok(()));
    }

    #[tokio::test]
    async fn a_caller_waiting_on_a_full_limit_is_counted_until_it_gets_a_slot() {
        use tower::ServiceExt;
        let (h, _) = tracker();
        let limit = tower::limit::ConcurrencyLimit::new(
            tower::service_fn(|_c: CriCall| async { Ok::<_, CriError>(()) }),
            1,
        );
        let mut holder = SlotWaitLayer::new(h.clone()).layer(limit);
        // Takes the only slot.
        holder.ready().await.unwrap();
        let mut waiter = holder.clone();
        let wait = tokio::spawn(async move {
            waiter.ready().await.unwrap();
        });
        for _ in 0..1000 {
            if h.waiting() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(h.waiting(), 1, "the second caller waits");
        drop(holder);
        wait.await.unwrap();
        assert_eq!(h.waiting(), 0);
    }
}
