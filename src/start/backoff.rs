//! The kubelet's crash-loop back-off (`doBackOff` over a
//! `flowcontrol.Backoff`): one entry per pod + container + spec hash, an
//! initial delay doubling up to a maximum, forgotten after twice the maximum
//! without a failure. Shared by every request of one podstart, kept in
//! memory only, and bounded: old entries are collected, and past
//! `MAX_ENTRIES` the stalest go first (the shared table, `crate::backoff`).
//! Holds no CRI calls and no events.
use std::{sync::Arc, time::Duration};

use crate::backoff::{Moment, Next, Table};
use crate::proto::v1::{Container, PodMetadata};
use crate::spec::labels;

/// The most keys kept; beyond, the least recently updated are dropped.
const MAX_ENTRIES: usize = 4096;

/// The kubelet's `GetStableKey`: `<pod>_<namespace>_<uid>_<container>_<hash>`,
/// so a changed spec starts from the initial delay again.
pub fn stable_key(pod: &PodMetadata, c: &Container) -> String {
    format!(
        "{}_{}_{}_{}_{:x}",
        pod.name,
        pod.namespace,
        pod.uid,
        c.name,
        labels::container_hash(c)
    )
}

/// What the back-off says about restarting a container that finished at a
/// given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart now; the next failure waits `next` (already recorded).
    Go { next: Duration },
    /// Still backing off: `delay` counted from the finish, `remaining` from now.
    Wait {
        delay: Duration,
        remaining: Duration,
    },
}

/// The shared back-off table; times are nanoseconds since the epoch, as
/// the runtime reports a container's finish.
#[derive(Clone, Debug)]
pub struct CrashLoopBackoff {
    table: Arc<Table<i64, ()>>,
}

impl CrashLoopBackoff {
    pub fn new(initial: Duration, max: Duration) -> CrashLoopBackoff {
        CrashLoopBackoff {
            table: Arc::new(Table::new(initial, max.max(initial), MAX_ENTRIES)),
        }
    }

    /// `doBackOff` at time `now` for a container that finished at
    /// `finished_at` (both in nanoseconds since the epoch): in back-off if
    /// less than the current delay has passed since the finish; otherwise
    /// the delay moves on (`Backoff.Next`) and the restart may go ahead.
    pub fn check(&self, key: &str, finished_at: i64, now: i64) -> Verdict {
        let since = now.since(finished_at);
        match self
            .table
            .next_unless(key, finished_at, now, (), |e| since < e.delay)
        {
            Next::Held(e) => Verdict::Wait {
                delay: e.delay,
                remaining: e.delay - since,
            },
            Next::Moved(next) => Verdict::Go { next },
        }
    }

    /// Drops entries idle for more than twice the maximum (`Backoff.GC`).
    pub fn gc(&self, now: i64) {
        self.table.gc(now);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn table() -> CrashLoopBackoff {
        CrashLoopBackoff::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    #[test]
    fn first_restart_goes_at_once_then_delays_double_to_the_max() {
        let b = table();
        let mut now = 1000 * S;
        // First failure: no entry, restart now; the next one waits 10 s.
        assert_eq!(
            b.check("k", now, now),
            Verdict::Go {
                next: Duration::from_secs(10)
            }
        );
        let mut delays = Vec::new();
        for _ in 0..7 {
            // The container fails again right after its restart.
            let finished = now;
            match b.check("k", finished, now + S) {
                Verdict::Wait { delay, remaining } => {
                    assert_eq!(remaining, delay - Duration::from_secs(1));
                    delays.push(delay.as_secs());
                    now = finished + i64::try_from(delay.as_nanos()).unwrap();
                }
                other => panic!("expected back-off, got {other:?}"),
            }
            assert!(matches!(b.check("k", finished, now), Verdict::Go { .. }));
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn resets_after_twice_the_max_without_failure() {
        let b = table();
        let t = 1000 * S;
        b.check("k", t, t);
        b.check("k", t, t + 11 * S); // next: 20 s
        // A failure more than 10 minutes after the last update starts over.
        let late = t + 11 * S + 601 * S;
        assert_eq!(
            b.check("k", late, late),
            Verdict::Go {
                next: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn keys_carry_the_spec_hash() {
        let pod = PodMetadata {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            ..Default::default()
        };
        let a = Container {
            name: "app".into(),
            image: "busybox:1".into(),
            ..Default::default()
        };
        let b = Container {
            image: "busybox:2".into(),
            ..a.clone()
        };
        let ka = stable_key(&pod, &a);
        assert!(ka.starts_with("web_default_u1_app_"), "{ka}");
        assert_ne!(
            ka,
            stable_key(&pod, &b),
            "a spec change resets the back-off"
        );
    }

    #[test]
    fn gc_drops_idle_entries_and_the_table_is_bounded() {
        let b = table();
        let t = 1000 * S;
        b.check("old", t, t);
        b.check("new", t + 500 * S, t + 500 * S);
        b.gc(t + 700 * S);
        assert_eq!(b.len(), 1);
        for i in 0..(MAX_ENTRIES + 10) {
            b.check(&format!("k{i}"), t + 500 * S, t + 500 * S + i as i64);
        }
        assert!(b.len() <= MAX_ENTRIES);
    }
}
