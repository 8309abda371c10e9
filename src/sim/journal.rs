//! What tests can observe about the traffic the sim received: how often each CRI method was called
//! and every ExecSync command. Recording only; it never changes what a call answers.

use std::collections::HashMap;
use std::sync::Mutex;

use super::lock;

/// Per-method call counts and the exec log.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    calls: Mutex<HashMap<&'static str, u64>>,
    execs: Mutex<Vec<(String, Vec<String>)>>,
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
}
