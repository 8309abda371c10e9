//! The record of a request's events so far, for callers that attach to it
//! mid-way: the most recent step events (bounded in number and in encoded
//! bytes; the oldest go first) and the terminal event, kept aside so an
//! attacher always gets it. Progress events are not recorded: they are
//! stale by the time anyone reads them again.
use std::collections::VecDeque;

use prost::Message;

use crate::proto::v1::StartEvent;

/// Step events a request keeps for attachers.
pub const REPLAY_EVENTS: usize = 64;
/// Encoded bytes of the step events a request keeps for attachers; with
/// `--max-concurrent-starts` 128, at most 8 MiB over the node.
pub const REPLAY_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub(super) struct Replay {
    events: VecDeque<StartEvent>,
    bytes: usize,
    /// Step events recorded and since dropped to stay in bounds.
    skipped: u64,
    terminal: Option<StartEvent>,
    max_events: usize,
    max_bytes: usize,
}

impl Default for Replay {
    fn default() -> Self {
        Replay::new(REPLAY_EVENTS, REPLAY_BYTES)
    }
}

impl Replay {
    pub(super) fn new(max_events: usize, max_bytes: usize) -> Replay {
        Replay {
            events: VecDeque::new(),
            bytes: 0,
            skipped: 0,
            terminal: None,
            max_events,
            max_bytes,
        }
    }

    /// Records a step event, dropping the oldest ones past the bounds (an
    /// event larger than the byte bound on its own is not kept).
    pub(super) fn record(&mut self, event: StartEvent) {
        self.bytes += event.encoded_len();
        self.events.push_back(event);
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.encoded_len();
            self.skipped += 1;
        }
    }

    /// Records the terminal event.
    pub(super) fn end(&mut self, event: StartEvent) {
        self.terminal = Some(event);
    }

    /// The last `n` step events kept, oldest first.
    pub(super) fn recent(&self, n: usize) -> impl Iterator<Item = &StartEvent> {
        self.events.iter().skip(self.events.len().saturating_sub(n))
    }

    pub(super) fn terminal(&self) -> Option<&StartEvent> {
        self.terminal.as_ref()
    }

    #[cfg(test)]
    fn skipped(&self) -> u64 {
        self.skipped
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::Step;

    fn step(i: usize, len: usize) -> StartEvent {
        StartEvent::at(
            Step::Create,
            "Created",
            format!("{i:04}{}", "x".repeat(len)),
        )
    }

    fn messages<'a>(events: impl Iterator<Item = &'a StartEvent>) -> Vec<String> {
        events.map(|e| e.message[..4].to_string()).collect()
    }

    #[test]
    fn keeps_the_most_recent_events_within_the_count() {
        let mut r = Replay::new(3, usize::MAX);
        for i in 0..5 {
            r.record(step(i, 0));
        }
        assert_eq!(messages(r.recent(10)), ["0002", "0003", "0004"]);
        assert_eq!(messages(r.recent(2)), ["0003", "0004"]);
        assert_eq!(r.skipped(), 2);
        assert!(r.terminal().is_none());
    }

    #[test]
    fn keeps_the_most_recent_events_within_the_bytes() {
        let one = step(0, 100).encoded_len();
        let mut r = Replay::new(usize::MAX, one * 2 + one / 2);
        for i in 0..4 {
            r.record(step(i, 100));
        }
        assert_eq!(messages(r.recent(10)), ["0002", "0003"]);
        assert_eq!(r.bytes(), one * 2);
        // An event larger than the bound alone is not kept either.
        r.record(step(9, 10_000));
        assert_eq!(r.recent(10).count(), 0);
        assert_eq!(r.bytes(), 0);
        assert_eq!(r.skipped(), 5);
    }

    #[test]
    fn the_terminal_event_is_kept_aside() {
        let mut r = Replay::new(1, usize::MAX);
        r.record(step(0, 0));
        r.end(StartEvent::at(Step::Done, "PodStarted", "done"));
        r.record(step(1, 0));
        assert_eq!(messages(r.recent(10)), ["0001"]);
        assert_eq!(r.terminal().map(|e| e.reason.as_str()), Some("PodStarted"));
    }

    #[test]
    fn the_default_bounds() {
        let mut r = Replay::default();
        for i in 0..(REPLAY_EVENTS * 2) {
            r.record(step(i, 10));
        }
        assert_eq!(r.recent(usize::MAX).count(), REPLAY_EVENTS);
        let mut r = Replay::default();
        for i in 0..REPLAY_EVENTS {
            r.record(step(i, 4096));
        }
        assert!(r.bytes() <= REPLAY_BYTES);
        assert!(r.recent(usize::MAX).count() < REPLAY_EVENTS);
    }
}
