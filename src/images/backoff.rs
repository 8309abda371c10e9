//! Image pull back-off per (pod uid, image), the kubelet's
//! `flowcontrol.Backoff` without jitter: the first failure blocks further
//! pulls for `initial`, each failure within the window doubles it up to
//! `max`, and an entry idle for more than twice `max` starts over (the
//! shared table, `crate::backoff`). One concurrent pull shared by several
//! containers of a pod counts once.
//!
//! Uses tokio's clock, so tests can pause and advance time. Holds the last
//! error message for the `Back-off pulling image` text; that message comes
//! from the runtime and carries no credential.
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Next, Table};

/// The most (pod, image) keys kept; beyond, the stalest are dropped.
const MAX_ENTRIES: usize = 4096;

/// What a key remembers of its last failed pull.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    /// The pull whose failure was recorded last.
    pull: u64,
}

/// A key that is backing off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// Until the next pull may run.
    pub remaining: Duration,
    /// The failure that started (or extended) the back-off.
    pub last_error: String,
}

#[derive(Debug)]
pub struct PullBackoff {
    table: Table<Instant, Failure>,
}

/// The kubelet's key: `<podUID>_<image>`.
pub fn key(pod_uid: &str, image: &str) -> String {
    format!("{pod_uid}_{image}")
}

impl PullBackoff {
    pub fn new(initial: Duration, max: Duration) -> PullBackoff {
        PullBackoff {
            table: Table::new(initial, max, MAX_ENTRIES),
        }
    }

    /// The kubelet's `IsInBackOffSinceUpdate`.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Blocked> {
        let e = self.table.live(key, now)?;
        let since = now.saturating_duration_since(e.last_update);
        (since < e.delay).then(|| Blocked {
            remaining: e.delay - since,
            last_error: e.data.message,
        })
    }

    /// The kubelet's `Next`, once per failed pull: a second report of the
    /// same `pull` (another container that shared it) changes nothing.
    /// Returns the delay now in force.
    pub fn failed(&self, key: &str, now: Instant, pull: u64, error: String) -> Duration {
        let failure = Failure {
            message: error,
            pull,
        };
        match self
            .table
            .next_unless(key, now, now, failure, |e| e.data.pull == pull)
        {
            Next::Moved(delay) => delay,
            Next::Held(e) => e.delay,
        }
    }

    /// A successful pull forgets the key.
    pub fn succeeded(&self, key: &str) {
        self.table.forget(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[tokio::test(start_paused = true)]
    async fn blocked_within_the_window_then_free() {
        let b = PullBackoff::new(S(10), S(300));
        let k = key("uid", "img:1");
        assert_eq!(b.blocked(&k, Instant::now()), None);
        assert_eq!(
            b.failed(&k, Instant::now(), 1, "401 Unauthorized".into()),
            S(10)
        );
        let blocked = b.blocked(&k, Instant::now()).unwrap();
        assert_eq!(blocked.remaining, S(10));
        assert_eq!(blocked.last_error, "401 Unauthorized");
        tokio::time::advance(S(9)).await;
        assert_eq!(b.blocked(&k, Instant::now()).unwrap().remaining, S(1));
        tokio::time::advance(S(1)).await;
        assert_eq!(b.blocked(&k, Instant::now()), None);
        // The next failure doubles; a second report of the same pull does not.
        assert_eq!(b.failed(&k, Instant::now(), 2, "again".into()), S(20));
        assert_eq!(b.failed(&k, Instant::now(), 2, "again".into()), S(20));
        assert_eq!(b.failed(&k, Instant::now(), 3, "again".into()), S(40));
        // Other pods and images are not affected.
        assert_eq!(b.blocked(&key("other", "img:1"), Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let b = PullBackoff::new(S(10), S(300));
        for i in 0..(MAX_ENTRIES + 10) {
            b.failed(&key(&i.to_string(), "img"), Instant::now(), 1, "x".into());
        }
        assert_eq!(b.table.len(), MAX_ENTRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_start_over_and_success_forgets() {
        let b = PullBackoff::new(S(10), S(300));
        let k = key("uid", "img:1");
        b.failed(&k, Instant::now(), 1, "x".into());
        b.failed(&k, Instant::now(), 2, "x".into());
        tokio::time::advance(S(601)).await;
        assert_eq!(b.failed(&k, Instant::now(), 3, "x".into()), S(10));
        b.succeeded(&k);
        assert_eq!(b.blocked(&k, Instant::now()), None);
    }
}
