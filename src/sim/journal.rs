//! What tests can observe about the traffic the sim received: how often each CRI method was called,
//! every ExecSync command, the order of StopContainer calls, how many PullImage calls ran at once and how many container event
//! streams were open at once. Recording only; it never
//! changes what a call answers.

use std::collections::HashMap;
use std::sync::Mutex;

use super::lock;

/// Per-method call counts and the exec log.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    calls: Mutex<HashMap<&'static str, u64>>,
    execs: Mutex<Vec<(String, Vec<String>)>>,
    /// Container ids of StopContainer calls, in the order they were answered.
    stops: Mutex<Vec<String>>,
    /// (in progress now, most at once) of PullImage.
    pulls: Mutex<(u64, u64)>,
    /// (open now, most at once) of GetContainerEvents streams.
    event_streams: Mutex<(u64, u64)>,
}

/// One open GetContainerEvents stream; counted until dropped.
pub(crate) struct EventStreamOpen<'a>(&'a Journal);

impl Drop for EventStreamOpen<'_> {
    fn drop(&mut self) {
        lock(&self.0.event_streams).0 -= 1;
    }
}

/// One PullImage in progress; counted until dropped.
pub(crate) struct PullInProgress<'a>(&'a Journal);

impl Drop for PullInProgress<'_> {
    fn drop(&mut self) {
        lock(&self.0.pulls).0 -= 1;
    }
}

impl Journal {
    pub(crate) fn record_call(&self, op: &'static str) {
        *lock(&self.calls).entry(op).or_default() += 1;
    }

    pub(crate) fn calls(&self, op: &str) -> u64 {
        lock(&self.calls).get(op).copied().unwrap_or(0)
    }

    pub(crate) fn record_exec(&self, container_id: &str, cmd: &[String]) {
        lock(&self.execs).push((container_id.to_owned(), cmd.to_vec()));
    }

    pub(crate) fn execs(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.execs).clone()
    }

    pub(crate) fn record_stop(&self, container_id: &str) {
        lock(&self.stops).push(container_id.to_owned());
    }

    pub(crate) fn stops(&self) -> Vec<String> {
        lock(&self.stops).clone()
    }

    pub(crate) fn pull_started(&self) -> PullInProgress<'_> {
        let mut pulls = lock(&self.pulls);
        pulls.0 += 1;
        pulls.1 = pulls.1.max(pulls.0);
        PullInProgress(self)
    }

    pub(crate) fn max_concurrent_pulls(&self) -> u64 {
        lock(&self.pulls).1
    }

    pub(crate) fn event_stream_opened(&self) -> EventStreamOpen<'_> {
        let mut streams = lock(&self.event_streams);
        streams.0 += 1;
        streams.1 = streams.1.max(streams.0);
        EventStreamOpen(self)
    }

    /// (open now, most at once) of GetContainerEvents streams.
    pub(crate) fn event_streams(&self) -> (u64, u64) {
        *lock(&self.event_streams)
    }
}
