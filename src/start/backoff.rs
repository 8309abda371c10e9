//! The kubelet's crash-loop back-off (`doBackOff` over a
//! `flowcontrol.Backoff`): one entry per pod + container + spec hash, an
//! initial delay doubling up to a maximum, forgotten after twice the maximum
//! without a failure. Shared by every request of one podstart, kept in
//! memory only, and bounded: old entries are collected, and past
//! `MAX_ENTRIES` the stalest go first. Holds no CRI calls and no events.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

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

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    /// Nanoseconds since the epoch of the last `next`.
    last_update: i64,
}

/// The shared back-off table.
#[derive(Clone)]
pub struct CrashLoopBackoff {
    initial: Duration,
    max: Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl CrashLoopBackoff {
    pub fn new(initial: Duration, max: Duration) -> CrashLoopBackoff {
        CrashLoopBackoff {
            initial,
            max: max.max(initial),
            entries: Arc::default(),
        }
    }

    /// `doBackOff` at time `now` for a container that finished at
    /// `finished_at` (both in nanoseconds since the epoch): in back-off if
    /// less than the current delay has passed since the finish; otherwise
    /// the delay moves on (`Backoff.Next`) and the restart may go ahead.
    pub fn check(&self, key: &str, finished_at: i64, now: i64) -> Verdict {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let max_idle = nanos(self.max * 2);
        if let Some(e) = entries.get(key)
            && finished_at.saturating_sub(e.last_update) <= max_idle
        {
            let since = Duration::from_nanos(now.saturating_sub(finished_at).max(0) as u64);
            if since < e.backoff {
                return Verdict::Wait {
                    delay: e.backoff,
                    remaining: e.backoff - since,
                };
            }
        }
        let next = match entries.get(key) {
            Some(e) if finished_at.saturating_sub(e.last_update) <= max_idle => {
                (e.backoff * 2).min(self.max)
            }
            _ => self.initial,
        };
        entries.insert(
            key.to_string(),
            Entry {
                backoff: next,
                last_update: now,
            },
        );
        if entries.len() > MAX_ENTRIES {
            collect(&mut entries, now, max_idle);
        }
        Verdict::Go { next }
    }

    /// Drops entries idle for more than twice the maximum (`Backoff.GC`).
    pub fn gc(&self, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        collect(&mut entries, now, nanos(self.max * 2));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn collect(entries: &mut HashMap<String, Entry>, now: i64, max_idle: i64) {
    entries.retain(|_, e| now.saturating_sub(e.last_update) <= max_idle);
    if entries.len() > MAX_ENTRIES {
        let mut by_age: Vec<(String, i64)> = entries
            .iter()
            .map(|(k, e)| (k.clone(), e.last_update))
            .collect();
        by_age.sort_by_key(|(_, t)| *t);
        let excess = entries.len() - MAX_ENTRIES;
        for (k, _) in by_age.into_iter().take(excess) {
            entries.remove(&k);
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
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
                    now = finished + nanos(delay);
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
