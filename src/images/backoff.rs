//! Image pull back-off per (pod uid, image), the kubelet's
//! `flowcontrol.Backoff` without jitter: the first failure blocks further
//! pulls for `initial`, each failure within the window doubles it up to
//! `max`, and an entry idle for more than twice `max` starts over. One
//! concurrent pull shared by several containers of a pod counts once.
//!
//! Uses tokio's clock, so tests can pause and advance time. Holds the last
//! error message for the `Back-off pulling image` text; that message comes
//! from the runtime and carries no credential.
use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// The back-off of one key.
#[derive(Debug, Clone)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
    last_error: String,
    /// The pull whose failure was recorded last.
    last_pull: u64,
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
    initial: Duration,
    max: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The kubelet's key: `<podUID>_<image>`.
pub fn key(pod_uid: &str, image: &str) -> String {
    format!("{pod_uid}_{image}")
}

/// The delay after a failure, given the entry's current delay (if it is
/// still live at `now`).
pub fn next_delay(current: Option<Duration>, initial: Duration, max: Duration) -> Duration {
    match current {
        None => initial.min(max),
        Some(d) => (d * 2).min(max),
    }
}

/// True when an entry last updated at `last_update` is forgotten at `now`.
pub fn expired(now: Instant, last_update: Instant, max: Duration) -> bool {
    now.saturating_duration_since(last_update) > max * 2
}

impl PullBackoff {
    pub fn new(initial: Duration, max: Duration) -> PullBackoff {
        PullBackoff {
            initial,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kubelet's `IsInBackOffSinceUpdate`.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Blocked> {
        let entries = self.entries();
        let e = entries.get(key)?;
        let since = now.saturating_duration_since(e.last_update);
        if expired(now, e.last_update, self.max) || since >= e.backoff {
            return None;
        }
        Some(Blocked {
            remaining: e.backoff - since,
            last_error: e.last_error.clone(),
        })
    }

    /// The kubelet's `Next`, once per failed pull: a second report of the
    /// same `pull` (another container that shared it) changes nothing.
    /// Returns the delay now in force.
    pub fn failed(&self, key: &str, now: Instant, pull: u64, error: String) -> Duration {
        let mut entries = self.entries();
        entries.retain(|_, e| !expired(now, e.last_update, self.max));
        if let Some(e) = entries.get_mut(key)
            && e.last_pull == pull
        {
            return e.backoff;
        }
        let current = entries.get(key).map(|e| e.backoff);
        let backoff = next_delay(current, self.initial, self.max);
        entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
                last_error: error,
                last_pull: pull,
            },
        );
        backoff
    }

    /// A successful pull forgets the key.
    pub fn succeeded(&self, key: &str) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = next_delay(d, S(10), S(300));
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            next_delay(None, S(10), S(5)),
            S(5),
            "initial never above max"
        );
    }

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
