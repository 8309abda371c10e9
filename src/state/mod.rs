//! What the node runs, and who is working on which pod.
//!
//! - [`PodLocks`]: one start or stop at a time per pod uid, and a way for a
//!   stop to cancel a start in progress; the identity (namespace/name) of
//!   every start in flight, so a uid names one pod ([`PodLocks::claim`]).
//! - [`inflight`]: the StartPods in flight by uid, with a digest of each
//!   request, so an identical StartPod attaches to the start in flight.
//! - [`ledger`]: what the node's pods request, for the node's admission of
//!   a new pod against its allocatable amounts.
//! - [`readiness`]: which containers are ready, as the probes said; kept in
//!   memory (the runtime knows nothing of it).
//! - [`sandboxes`]: which uids and names certainly have no sandbox on the
//!   node, so a new pod's start skips the identity look-ups.
//! - [`view`]: pods and containers as the runtime reports them, found through
//!   the CRI labels podstart sets — so it holds after a podstart restart.
pub mod inflight;
pub mod ledger;
pub mod readiness;
pub mod sandboxes;
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
    /// How many requests have held the lock while the slot existed.
    entries: u64,
}

/// Per-uid exclusion and cancellation for StartPod / StopPod, and the
/// identities of the starts in flight.
#[derive(Clone, Default)]
pub struct PodLocks {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    claims: Arc<Mutex<Claims>>,
}

/// The identities starts in flight claim: uid → (namespace/name, how many
/// starts), namespace/name → uid.
#[derive(Default)]
struct Claims {
    by_uid: HashMap<String, (String, usize)>,
    by_name: HashMap<String, String>,
}

/// A pod's uid and its namespace/name disagree with a pod the node knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityConflict {
    /// The uid is already another pod's.
    #[error("pod uid {uid:?} is already pod {known:?}; this request names {requested:?}")]
    UidTaken {
        uid: String,
        /// The namespace/name the node knows the uid by.
        known: String,
        /// The namespace/name the request gives it.
        requested: String,
    },
    /// The namespace/name already runs (or starts) under another uid.
    #[error(
        "pod {name:?} is already pod uid {known:?}; this request gives uid {requested:?} \
         (stop that pod first)"
    )]
    NameTaken {
        name: String,
        known: String,
        requested: String,
    },
}

/// `namespace/name`, as identities are written.
pub fn pod_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// A start's claim on its pod's identity; released when dropped.
pub struct Claim {
    uid: String,
    claims: Arc<Mutex<Claims>>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        let Some((name, count)) = claims.by_uid.get_mut(&self.uid) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            let name = name.clone();
            claims.by_uid.remove(&self.uid);
            claims.by_name.remove(&name);
        }
    }
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
    /// This holder's number among the slot's entries (from 1).
    entry: u64,
}

/// Taken before a look-up of a pod's runtime state that is made ahead of
/// the pod's lock: once the lock is held, [`PodGuard::undisturbed_since`]
/// says whether the look-up still holds (no request held the lock during
/// it or since). Keeps the pod's slot while it lives.
pub struct Ticket {
    uid: String,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    locks: PodLocks,
    /// The slot's entries when the ticket was taken, if nobody held the
    /// lock then.
    free_at: Option<u64>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("uid", &self.uid)
            .field("free_at", &self.free_at)
            .finish_non_exhaustive()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // As PodGuard's drop: the slot goes when only the map holds it.
        let Some(lock) = self.lock.take() else { return };
        drop(lock);
        let mut slots = self.locks.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots
            .get(&self.uid)
            .is_some_and(|s| Arc::strong_count(&s.lock) == 1)
        {
            slots.remove(&self.uid);
        }
    }
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
    /// A ticket for a look-up of `uid`'s state made before its lock is
    /// taken (see [`Ticket`]).
    pub fn ticket(&self, uid: &str) -> Ticket {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(uid.to_string()).or_default();
        let free = slot.lock.try_lock().is_ok();
        Ticket {
            uid: uid.to_string(),
            lock: Some(slot.lock.clone()),
            locks: self.clone(),
            free_at: free.then_some(slot.entries),
        }
    }

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
        let (cancel, entry) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(uid.to_string()).or_default();
            if slot.cancel.is_cancelled() {
                slot.cancel = CancellationToken::new();
            }
            slot.entries += 1;
            (slot.cancel.clone(), slot.entries)
        };
        PodGuard {
            _guard: guard,
            cancel,
            uid: uid.to_string(),
            locks: self.clone(),
            entry,
        }
    }

    /// Records that a start of pod `uid`, named `namespace/name`, is in
    /// flight — unless a start in flight already gives the uid another
    /// name, or the name another uid. Checked and recorded at once, so of
    /// two clashing starts only one goes on.
    pub fn claim(&self, uid: &str, namespace: &str, name: &str) -> Result<Claim, IdentityConflict> {
        let requested = pod_name(namespace, name);
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, _)) = claims.by_uid.get(uid)
            && *known != requested
        {
            return Err(IdentityConflict::UidTaken {
                uid: uid.to_string(),
                known: known.clone(),
                requested,
            });
        }
        if let Some(known) = claims.by_name.get(&requested)
            && known != uid
        {
            return Err(IdentityConflict::NameTaken {
                name: requested,
                known: known.clone(),
                requested: uid.to_string(),
            });
        }
        claims
            .by_uid
            .entry(uid.to_string())
            .or_insert_with(|| (requested.clone(), 0))
            .1 += 1;
        claims.by_name.insert(requested, uid.to_string());
        Ok(Claim {
            uid: uid.to_string(),
            claims: self.claims.clone(),
        })
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

impl PodGuard {
    /// True when no other request held the pod's lock from the moment
    /// `ticket` was taken until this guard got it: what was looked up then
    /// was not changed by podstart since.
    pub fn undisturbed_since(&self, ticket: &Ticket) -> bool {
        ticket.uid == self.uid && ticket.free_at.is_some_and(|n| n + 1 == self.entry)
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
    async fn a_ticket_says_whether_anyone_held_the_lock_since() {
        let locks = PodLocks::default();
        let ticket = locks.ticket("uid-1");
        let guard = locks.enter("uid-1").await;
        assert!(guard.undisturbed_since(&ticket));
        let other = locks.enter("uid-2").await;
        assert!(!other.undisturbed_since(&ticket), "another pod's guard");
        drop((guard, ticket, other));

        // A request came and went between the look-up and the lock.
        let ticket = locks.ticket("uid-1");
        drop(locks.enter("uid-1").await);
        let guard = locks.enter("uid-1").await;
        assert!(!guard.undisturbed_since(&ticket));
        drop((guard, ticket));

        // A request held the lock when the look-up was made.
        let holder = locks.enter("uid-1").await;
        let ticket = locks.ticket("uid-1");
        drop(holder);
        let guard = locks.enter("uid-1").await;
        assert!(!guard.undisturbed_since(&ticket));
        drop((guard, ticket));
        assert_eq!(locks.len(), 0, "no slot is left behind");
    }

    #[tokio::test]
    async fn a_ticket_never_used_leaves_no_slot() {
        let locks = PodLocks::default();
        drop(locks.ticket("uid-1"));
        assert_eq!(locks.len(), 0);
        let guard = locks.enter("uid-1").await;
        let ticket = locks.ticket("uid-1");
        drop(guard);
        assert_eq!(locks.len(), 1, "the ticket keeps the slot");
        drop(ticket);
        assert_eq!(locks.len(), 0);
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

    #[test]
    fn a_uid_and_a_name_are_claimed_together() {
        let locks = PodLocks::default();
        let first = locks.claim("u1", "ns-a", "web").unwrap();
        let again = locks.claim("u1", "ns-a", "web").unwrap();
        assert_eq!(
            locks.claim("u1", "ns-b", "api").unwrap_err().to_string(),
            r#"pod uid "u1" is already pod "ns-a/web"; this request names "ns-b/api""#
        );
        assert_eq!(
            locks.claim("u2", "ns-a", "web").unwrap_err(),
            IdentityConflict::NameTaken {
                name: "ns-a/web".into(),
                known: "u1".into(),
                requested: "u2".into(),
            }
        );
        drop(first);
        assert!(
            locks.claim("u2", "ns-a", "web").is_err(),
            "still claimed once"
        );
        drop(again);
        let other = locks.claim("u2", "ns-a", "web").unwrap();
        assert!(locks.claim("u1", "ns-a", "web").is_err());
        drop(other);
        let claims = locks.claims.lock().unwrap();
        assert!(claims.by_uid.is_empty() && claims.by_name.is_empty());
    }

    #[tokio::test]
    async fn slots_are_dropped_when_unused() {
        let locks = PodLocks::default();
        drop(locks.enter("a").await);
        drop(locks.enter("b").await);
        assert_eq!(locks.len(), 0);
    }
}
