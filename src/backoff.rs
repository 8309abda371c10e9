//! A keyed exponential back-off table, the kubelet's `flowcontrol.Backoff`
//! without jitter: a key's first failure sets its delay to `initial`, each
//! later failure doubles it up to `max`, and an entry not updated for more
//! than twice `max` is forgotten, so the next failure starts over. The table
//! is bounded: past its capacity the idle entries go, then the stalest.
//!
//! Generic over the clock (`Moment`) and over what each entry remembers of
//! its last failure. Used by the image pull back-off (`images::backoff`,
//! tokio's clock) and the crash-loop back-off (`start::backoff`, runtime
//! timestamps). Pure: no I/O, no events.
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

/// A point in time the table can measure between.
pub trait Moment: Copy + Ord {
    /// How long after `earlier` this is; zero when it is not after it.
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for tokio::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Nanoseconds since the Unix epoch, as the CRI reports times.
impl Moment for i64 {
    fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(u64::try_from(self.saturating_sub(earlier)).unwrap_or(0))
    }
}

/// One key's back-off.
#[derive(Debug, Clone)]
pub struct Entry<T, D> {
    /// The delay in force.
    pub delay: Duration,
    /// When the delay was last moved on.
    pub last_update: T,
    /// What the caller recorded with the failure.
    pub data: D,
}

/// What `Table::next_unless` did.
#[derive(Debug, Clone)]
pub enum Next<T, D> {
    /// The delay moved on to this.
    Moved(Duration),
    /// The live entry was held as it is.
    Held(Entry<T, D>),
}

/// The delay after a failure, given the delay of a live entry, if any.
pub fn next_delay(current: Option<Duration>, initial: Duration, max: Duration) -> Duration {
    match current {
        None => initial.min(max),
        Some(d) => d.saturating_mul(2).min(max),
    }
}

/// A back-off table shared by every request of one podstart.
#[derive(Debug)]
pub struct Table<T, D> {
    initial: Duration,
    max: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry<T, D>>>,
}

impl<T: Moment, D: Clone> Table<T, D> {
    /// A table of at most `capacity` keys (at least one).
    pub fn new(initial: Duration, max: Duration, capacity: usize) -> Table<T, D> {
        Table {
            initial,
            max,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry<T, D>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kubelet's `hasExpired`: an entry last updated at `last_update`
    /// is forgotten by `at`.
    fn expired(&self, at: T, last_update: T) -> bool {
        at.since(last_update) > self.max.saturating_mul(2)
    }

    /// The entry of `key` as seen from `event_time`, unless it has expired
    /// by then.
    pub fn live(&self, key: &str, event_time: T) -> Option<Entry<T, D>> {
        let entries = self.entries();
        let e = entries.get(key)?;
        (!self.expired(event_time, e.last_update)).then(|| e.clone())
    }

    /// The kubelet's `Next`: moves the delay of `key` on for a failure seen
    /// at `event_time` (doubling it, or starting over from `initial` when
    /// the entry expired by then), records `data`, and stamps the entry
    /// `now`. Returns the delay now in force.
    pub fn next(&self, key: &str, event_time: T, now: T, data: D) -> Duration {
        match self.next_unless(key, event_time, now, data, |_| false) {
            Next::Moved(delay) => delay,
            Next::Held(e) => e.delay,
        }
    }

    /// As `next`, unless `hold` says the live entry of `key` stays as it is
    /// (a failure already counted, a delay still running): then that entry
    /// is returned unchanged. Decided and done under one lock.
    pub fn next_unless(
        &self,
        key: &str,
        event_time: T,
        now: T,
        data: D,
        hold: impl FnOnce(&Entry<T, D>) -> bool,
    ) -> Next<T, D> {
        let mut entries = self.entries();
        let live = entries
            .get(key)
            .filter(|e| !self.expired(event_time, e.last_update));
        if let Some(e) = live
            && hold(e)
        {
            return Next::Held(e.clone());
        }
        let delay = next_delay(live.map(|e| e.delay), self.initial, self.max);
        entries.insert(
            key.to_owned(),
            Entry {
                delay,
                last_update: now,
                data,
            },
        );
        if entries.len() > self.capacity {
            self.collect(&mut entries, now);
        }
        Next::Moved(delay)
    }

    /// Forgets `key` (a success).
    pub fn forget(&self, key: &str) {
        self.entries().remove(key);
    }

    /// Drops the entries expired by `now` (the kubelet's `GC`).
    pub fn gc(&self, now: T) {
        let mut entries = self.entries();
        self.collect(&mut entries, now);
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired entries, then, while over capacity, the stalest.
    fn collect(&self, entries: &mut HashMap<String, Entry<T, D>>, now: T) {
        entries.retain(|_, e| !self.expired(now, e.last_update));
        if entries.len() <= self.capacity {
            return;
        }
        let mut by_age: Vec<(T, String)> = entries
            .iter()
            .map(|(k, e)| (e.last_update, k.clone()))
            .collect();
        by_age.sort_unstable();
        let excess = entries.len() - self.capacity;
        for (_, k) in by_age.into_iter().take(excess) {
            entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn table() -> Table<i64, u32> {
        Table::new(secs(10), secs(300), 8)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = next_delay(d, secs(10), secs(300));
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            next_delay(None, secs(10), secs(5)),
            secs(5),
            "initial never above max"
        );
        assert_eq!(
            next_delay(Some(Duration::MAX), secs(10), Duration::MAX),
            Duration::MAX,
            "doubling saturates"
        );
    }

    #[test]
    fn next_doubles_while_live_and_starts_over_once_expired() {
        let t = table();
        assert_eq!(t.next("k", 0, 0, 1), secs(10));
        assert_eq!(t.next("k", S, S, 2), secs(20));
        let e = t.live("k", S).unwrap();
        assert_eq!((e.delay, e.last_update, e.data), (secs(20), S, 2));
        // Exactly twice the max after the last update: still live.
        assert!(t.live("k", S + 600 * S).is_some());
        assert_eq!(t.next("k", S + 600 * S, S + 600 * S, 3), secs(40));
        // More than twice the max: forgotten, back to the initial delay.
        let late = S + 1201 * S;
        assert!(t.live("k", late).is_none());
        assert_eq!(t.next("k", late, late, 4), secs(10));
    }

    #[test]
    fn a_held_entry_stays_as_it_is() {
        let t = table();
        t.next("k", 0, 0, 7);
        match t.next_unless("k", S, S, 8, |e| e.data == 7) {
            Next::Held(e) => assert_eq!((e.delay, e.last_update, e.data), (secs(10), 0, 7)),
            other => panic!("expected the entry held, got {other:?}"),
        }
        assert!(matches!(
            t.next_unless("k", S, S, 8, |e| e.data == 9),
            Next::Moved(d) if d == secs(20)
        ));
        // An expired entry is never offered to `hold`.
        let late = S + 601 * S;
        assert!(matches!(
            t.next_unless("k", late, late, 9, |_| true),
            Next::Moved(d) if d == secs(10)
        ));
    }

    #[test]
    fn forget_and_gc() {
        let t = table();
        t.next("a", 0, 0, 0);
        t.next("b", 500 * S, 500 * S, 0);
        t.forget("a");
        assert!(t.live("a", 0).is_none());
        t.next("a", 0, 0, 0);
        t.gc(700 * S);
        assert_eq!(t.len(), 1);
        assert!(t.live("b", 700 * S).is_some());
        assert!(!t.is_empty());
    }

    #[test]
    fn over_capacity_the_stalest_go_first() {
        let t = table();
        for i in 0..20 {
            t.next(&format!("k{i}"), i, i, 0);
        }
        assert_eq!(t.len(), 8);
        assert!(t.live("k19", 19).is_some(), "the newest stays");
        assert!(t.live("k11", 19).is_none(), "the stalest went");
        assert!(t.live("k12", 19).is_some());
    }

    #[test]
    fn moments_saturate() {
        assert_eq!(5i64.since(7), Duration::ZERO);
        assert_eq!((2 * S).since(S), secs(1));
        let now = tokio::time::Instant::now();
        assert_eq!(now.since(now + secs(1)), Duration::ZERO);
    }
}
