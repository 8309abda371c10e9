//! What the node runs, and who is working on which pod.
//!
//! - [`PodLocks`]: one start or stop at a time per pod uid, and a way for a
//!   stop to cancel a start in progress.
//! - [`view`]: pods and containers as the runtime reports them, found through
//!   the CRI labels podstart sets — so it holds after a podstart restart.
pub mod view;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    cancel: CancellationToken,
}

/// Per-uid exclusion and cancellation for StartPod / StopPod.
#[derive(Clone, Default)]
pub struct PodLocks {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl std::fmt::Debug for PodLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLocks").finish_non_exhaustive()
    }
}

/// Held while a request works on a pod; `cancel` fires when a StopPod (or
/// shutdown) wants the work to end.
pub struct PodGuard {
    _guard: OwnedMutexGuard<()>,
    pub cancel: CancellationToken,
    uid: String,
    locks: PodLocks,
}

impl std::fmt::Debug for PodGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodGuard")
            .field("uid", &self.uid)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl PodLocks {
    /// Waits until no other request works on `uid`, then holds it.
    pub async fn enter(&self, uid: &str) -> PodGuard {
        let lock = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(uid.to_string()).or_default();
            if slot.cancel.is_cancelled() {
                slot.cancel = CancellationToken::new();
            }
            slot.lock.clone()
        };
        let guard = lock.lock_owned().await;
        let cancel = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(uid.to_string()).or_default();
            if slot.cancel.is_cancelled() {
                slot.cancel = CancellationToken::new();
            }
            slot.cancel.clone()
        };
        PodGuard {
            _guard: guard,
            cancel,
            uid: uid.to_string(),
            locks: self.clone(),
        }
    }

    /// Asks whoever works on `uid` to stop.
    pub fn cancel(&self, uid: &str) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(uid) {
            slot.cancel.cancel();
        }
    }

    /// Cancels every request (shutdown).
    pub fn cancel_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for slot in slots.values() {
            slot.cancel.cancel();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_default()
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        // References to the lock: the map's, this guard's, and one per
        // request waiting in enter(). With no waiter the slot goes, so the
        // map only holds pods being worked on.
        let mut slots = self.locks.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots
            .get(&self.uid)
            .is_some_and(|s| Arc::strong_count(&s.lock) <= 2)
        {
            slots.remove(&self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_request_per_pod_at_a_time() {
        let locks = PodLocks::default();
        let first = locks.enter("uid-1").await;
        let second = tokio::time::timeout(Duration::from_millis(50), locks.enter("uid-1")).await;
        assert!(second.is_err(), "second enter must wait for the first");
        let other = tokio::time::timeout(Duration::from_millis(50), locks.enter("uid-2")).await;
        assert!(other.is_ok(), "another pod is independent");
        drop(other);
        drop(first);
        let again = tokio::time::timeout(Duration::from_millis(50), locks.enter("uid-1")).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn cancel_reaches_the_holder_and_not_the_next() {
        let locks = PodLocks::default();
        let first = locks.enter("uid-1").await;
        locks.cancel("uid-1");
        assert!(first.cancel.is_cancelled());
        drop(first);
        let next = locks.enter("uid-1").await;
        assert!(!next.cancel.is_cancelled());
    }

    #[tokio::test]
    async fn slots_are_dropped_when_unused() {
        let locks = PodLocks::default();
        drop(locks.enter("a").await);
        drop(locks.enter("b").await);
        assert_eq!(locks.len(), 0);
    }
}
