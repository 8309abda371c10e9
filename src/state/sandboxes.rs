//! What this podstart knows of the node's podstart sandboxes, so that a
//! start of a pod the node has never seen skips the identity look-ups
//! (two ListPodSandbox calls on the critical path of every start).
//!
//! The index only ever answers "certainly none": it holds a superset of
//! the (uid, namespace/name) pairs that may have a sandbox on the node.
//! - It knows nothing until [`NodeSandboxes::fill`] gives it a listing of
//!   every podstart sandbox (recovery at start-up makes one); until then
//!   every start looks up the runtime, as without it.
//! - A pair is added *before* its RunPodSandbox is sent
//!   ([`NodeSandboxes::reserve`]), so a failed or uncertain create leaves
//!   it in; it leaves only when a StopPod, holding the pod's lock, removed
//!   every sandbox of the uid ([`NodeSandboxes::forget`]).
//! - A fill merges with what was reserved meanwhile (a listing taken
//!   before a create does not drop it).
//!
//! What it cannot see: sandboxes with podstart's labels made by another
//! process after the listing (a second podstart on the same runtime). The
//! runtime's own name reservation still catches a second sandbox of the
//! same uid and attempt (the start then looks up and adopts, see
//! `start/pod.rs`); a name taken under another uid by that other process
//! is not refused.
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Index {
    /// A listing of the whole node was merged in.
    complete: bool,
    /// uid → the namespace/names its sandboxes carry.
    by_uid: HashMap<String, HashSet<String>>,
    /// namespace/name → how many uids carry it.
    names: HashMap<String, usize>,
}

impl Index {
    fn add(&mut self, uid: &str, name: &str) {
        let names = self.by_uid.entry(uid.to_string()).or_default();
        if names.insert(name.to_string()) {
            *self.names.entry(name.to_string()).or_default() += 1;
        }
    }
}

/// The node's podstart sandboxes as far as this process knows them.
#[derive(Debug, Default)]
pub struct NodeSandboxes {
    index: Mutex<Index>,
}

impl NodeSandboxes {
    /// Merges a listing of every podstart sandbox on the node, as
    /// (uid, namespace/name) pairs; from then on the index answers.
    pub fn fill<I>(&self, listed: I)
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut index = self.lock();
        for (uid, name) in listed {
            index.add(&uid, &name);
        }
        index.complete = true;
    }

    /// `uid` under `name` may have a sandbox from now on: called before its
    /// RunPodSandbox is sent.
    pub fn reserve(&self, uid: &str, name: &str) {
        self.lock().add(uid, name);
    }

    /// Every sandbox of `uid` is gone (a StopPod removed them, under the
    /// pod's lock).
    pub fn forget(&self, uid: &str) {
        let mut index = self.lock();
        let Some(names) = index.by_uid.remove(uid) else {
            return;
        };
        for name in names {
            if let Some(n) = index.names.get_mut(&name) {
                *n -= 1;
                if *n == 0 {
                    index.names.remove(&name);
                }
            }
        }
    }

    /// True only when the node certainly has no sandbox of `uid` and none
    /// named `name` (namespace/name) under any uid.
    pub fn certainly_none(&self, uid: &str, name: &str) -> bool {
        let index = self.lock();
        index.complete && !index.by_uid.contains_key(uid) && !index.names.contains_key(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // Every update leaves the index whole: a panic elsewhere while it
        // was held cannot have broken it.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(uid: &str, name: &str) -> (String, String) {
        (uid.to_string(), name.to_string())
    }

    #[test]
    fn knows_nothing_until_filled() {
        let s = NodeSandboxes::default();
        assert!(!s.certainly_none("u1", "ns/a"));
        s.fill([]);
        assert!(s.certainly_none("u1", "ns/a"));
    }

    #[test]
    fn a_listed_uid_or_name_is_not_none() {
        let s = NodeSandboxes::default();
        s.fill([pair("u1", "ns/a")]);
        assert!(!s.certainly_none("u1", "ns/b"), "the uid has a sandbox");
        assert!(!s.certainly_none("u2", "ns/a"), "the name has a sandbox");
        assert!(s.certainly_none("u2", "ns/b"));
    }

    #[test]
    fn a_reservation_counts_before_and_after_a_fill() {
        let s = NodeSandboxes::default();
        s.reserve("u1", "ns/a");
        // A listing taken before the create does not drop it.
        s.fill([pair("u2", "ns/b")]);
        assert!(!s.certainly_none("u1", "ns/x"));
        assert!(!s.certainly_none("u2", "ns/x"));
        s.reserve("u3", "ns/c");
        assert!(!s.certainly_none("u9", "ns/c"));
    }

    #[test]
    fn forget_clears_the_uid_and_its_names_only_when_no_other_uid_has_them() {
        let s = NodeSandboxes::default();
        s.fill([pair("u1", "ns/a"), pair("u2", "ns/a"), pair("u1", "ns/b")]);
        s.forget("u1");
        assert!(s.certainly_none("u1", "ns/b"));
        assert!(!s.certainly_none("u1", "ns/a"), "u2 still carries ns/a");
        s.forget("u2");
        assert!(s.certainly_none("u1", "ns/a"));
        // Forgetting an unknown uid changes nothing.
        s.forget("u7");
        assert!(s.certainly_none("u1", "ns/a"));
    }

    #[test]
    fn the_same_pair_twice_is_one_entry() {
        let s = NodeSandboxes::default();
        s.fill([pair("u1", "ns/a"), pair("u1", "ns/a")]);
        s.reserve("u1", "ns/a");
        s.forget("u1");
        assert!(s.certainly_none("u2", "ns/a"));
    }
}
