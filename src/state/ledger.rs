//! The node's admission of what pods request (the kubelet's predicate
//! admission, `noderesources.Fits`): every pod podstart runs or is starting
//! on the node holds an entry of its requests, by uid, from the moment its
//! start is admitted until it is stopped. A start is admitted when its
//! requests fit in the node's allocatable amounts minus every other
//! entry's; the check and the entry are made under one lock, so two starts
//! in flight can never both take the last of a resource. A refused or
//! abandoned admission (the start was refused after it, before it was
//! confirmed) puts back what the uid held before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::node::Amounts;

/// A pod that does not fit: the kubelet's `InsufficientResourceError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, \
     capacity: {capacity}"
)]
pub struct Insufficient {
    /// `cpu` (millicores) or `memory` (bytes).
    pub resource: &'static str,
    pub requested: i64,
    /// What the node's other pods request.
    pub used: i64,
    /// The node's allocatable amount.
    pub capacity: i64,
}

impl Insufficient {
    /// The kubelet's reason: `OutOfcpu`, `OutOfmemory`.
    pub fn reason(&self) -> &'static str {
        match self.resource {
            "cpu" => "OutOfcpu",
            _ => "OutOfmemory",
        }
    }
}

/// The requests of the node's pods, by uid. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Book>>,
}

/// The entries and their sum, kept together: an admission costs the same
/// with ten pods on the node or ten thousand.
#[derive(Debug, Default)]
struct Book {
    by_uid: HashMap<String, Amounts>,
    /// Sum of every entry (wide: never saturates, so removal is exact).
    cpu_millis: i128,
    memory_bytes: i128,
}

impl Book {
    fn insert(&mut self, uid: String, amounts: Amounts) -> Option<Amounts> {
        self.add(amounts, 1);
        let previous = self.by_uid.insert(uid, amounts);
        if let Some(previous) = previous {
            self.add(previous, -1);
        }
        previous
    }

    fn remove(&mut self, uid: &str) -> Option<Amounts> {
        let removed = self.by_uid.remove(uid);
        if let Some(removed) = removed {
            self.add(removed, -1);
        }
        removed
    }

    fn add(&mut self, a: Amounts, sign: i128) {
        self.cpu_millis += sign * i128::from(a.cpu_millis);
        self.memory_bytes += sign * i128::from(a.memory_bytes);
    }

    /// The sum of every entry but `uid`'s.
    fn used_without(&self, uid: Option<&str>) -> Amounts {
        let own = uid
            .and_then(|uid| self.by_uid.get(uid))
            .copied()
            .unwrap_or_default();
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        Amounts {
            cpu_millis: clamp(self.cpu_millis - i128::from(own.cpu_millis)),
            memory_bytes: clamp(self.memory_bytes - i128::from(own.memory_bytes)),
        }
    }
}

/// An admission not yet confirmed: dropped unconfirmed, it puts back what
/// the uid held before.
#[must_use]
#[derive(Debug)]
pub struct Admission {
    ledger: Ledger,
    uid: String,
    previous: Option<Amounts>,
    confirmed: bool,
}

impl Admission {
    /// Keeps the entry until the pod is stopped.
    pub fn confirm(mut self) {
        self.confirmed = true;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.confirmed {
            return;
        }
        let mut entries = self.ledger.lock();
        match self.previous {
            Some(prev) => entries.insert(self.uid.clone(), prev),
            None => entries.remove(&self.uid),
        };
    }
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits `uid` with `requests` on a node of `allocatable` amounts: a
    /// resource the pod requests nothing of is not checked (as the
    /// kubelet), and the uid's own earlier entry (a start of a pod already
    /// running) is replaced, not counted.
    pub fn admit(
        &self,
        uid: &str,
        requests: Amounts,
        allocatable: Amounts,
    ) -> Result<Admission, Insufficient> {
        let mut entries = self.lock();
        let used = entries.used_without(Some(uid));
        let checks = [
            (
                "cpu",
                requests.cpu_millis,
                used.cpu_millis,
                allocatable.cpu_millis,
            ),
            (
                "memory",
                requests.memory_bytes,
                used.memory_bytes,
                allocatable.memory_bytes,
            ),
        ];
        for (resource, requested, used, capacity) in checks {
            if requested > 0 && requested > capacity.saturating_sub(used) {
                return Err(Insufficient {
                    resource,
                    requested,
                    used,
                    capacity,
                });
            }
        }
        let previous = entries.insert(uid.to_string(), requests);
        Ok(Admission {
            ledger: self.clone(),
            uid: uid.to_string(),
            previous,
            confirmed: false,
        })
    }

    /// Records a pod the node already runs (recovery), without a check.
    pub fn record(&self, uid: &str, requests: Amounts) {
        self.lock().insert(uid.to_string(), requests);
    }

    /// Forgets a stopped pod.
    pub fn release(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// What the node's pods request together.
    pub fn used(&self) -> Amounts {
        self.lock().used_without(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(cpu_millis: i64, memory_bytes: i64) -> Amounts {
        Amounts {
            cpu_millis,
            memory_bytes,
        }
    }

    #[test]
    fn admission_is_allocatable_minus_what_the_others_request() {
        let node = a(2000, 1000);
        let l = Ledger::default();
        l.admit("p1", a(1500, 100), node).unwrap().confirm();
        // 1500 + 600 > 2000.
        let err = l.admit("p2", a(600, 100), node).err().unwrap();
        assert_eq!(
            err.to_string(),
            "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
        );
        assert_eq!(err.reason(), "OutOfcpu");
        // Exactly what is left fits.
        l.admit("p2", a(500, 900), node).unwrap().confirm();
        let err = l.admit("p3", a(0, 1), node).err().unwrap();
        assert_eq!(
            (err.reason(), err.requested, err.used, err.capacity),
            ("OutOfmemory", 1, 1000, 1000)
        );
        // A pod requesting nothing always fits.
        l.admit("p3", a(0, 0), node).unwrap().confirm();
        // The same uid again replaces its own entry.
        l.admit("p1", a(1500, 100), node).unwrap().confirm();
        assert_eq!(l.used(), a(2000, 1000));
        l.release("p1");
        assert_eq!(l.used(), a(500, 900));
    }

    #[test]
    fn the_sum_follows_every_entry_in_and_out() {
        let node = a(i64::MAX, i64::MAX);
        let l = Ledger::default();
        for i in 0..1000 {
            l.admit(&format!("p{i}"), a(1, 2), node).unwrap().confirm();
        }
        assert_eq!(l.used(), a(1000, 2000));
        // Replacing an entry counts the new amounts only.
        l.admit("p7", a(11, 12), node).unwrap().confirm();
        assert_eq!(l.used(), a(1010, 2010));
        for i in 0..1000 {
            l.release(&format!("p{i}"));
        }
        assert_eq!(l.used(), a(0, 0));
        // Amounts past i64 together: kept exactly, reported clamped.
        l.record("big-1", a(i64::MAX, 0));
        l.record("big-2", a(i64::MAX, 0));
        assert_eq!(l.used().cpu_millis, i64::MAX);
        l.release("big-2");
        assert_eq!(l.used().cpu_millis, i64::MAX);
        l.release("big-1");
        assert_eq!(l.used(), a(0, 0));
    }

    #[test]
    fn an_unconfirmed_admission_puts_back_what_was_there() {
        let node = a(1000, 1000);
        let l = Ledger::default();
        l.admit("p1", a(100, 100), node).unwrap().confirm();
        drop(l.admit("p1", a(900, 900), node).unwrap());
        assert_eq!(l.used(), a(100, 100));
        drop(l.admit("p2", a(900, 900), node).unwrap());
        assert_eq!(l.used(), a(100, 100));
        // Held (not yet confirmed) admissions count against others.
        let held = l.admit("p2", a(900, 0), node).unwrap();
        assert!(l.admit("p3", a(1, 0), node).is_err());
        drop(held);
        assert!(l.admit("p3", a(1, 0), node).is_ok());
    }
}
