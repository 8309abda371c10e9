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
    entries: Arc<Mutex<HashMap<String, Amounts>>>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Amounts>> {
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
        let used = entries
            .iter()
            .filter(|(k, _)| k.as_str() != uid)
            .fold(Amounts::default(), |sum, (_, a)| sum.plus(*a));
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
        self.lock()
            .values()
            .fold(Amounts::default(), |sum, a| sum.plus(*a))
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
