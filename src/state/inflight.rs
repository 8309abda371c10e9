//! The StartPods in flight, by pod uid: a StartPod identical to one in
//! flight attaches to it (its caller gets the same events) instead of
//! starting the pod a second time; one that differs is told so.
//!
//! A start is known by its uid, its namespace/name and a digest of its
//! request (a keyed hash of the request's canonical encoding, made by the
//! caller). The value stored (`T`) is whatever an attaching caller needs —
//! the start's event sink. The entry lives as long as its [`Registration`].
use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use super::pod_name;

/// What a start is known by in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartKey {
    uid: String,
    /// namespace/name.
    name: String,
    digest: u64,
}

impl StartKey {
    /// `namespace/name`, as refusals name the pod.
    pub fn pod(&self) -> &str {
        &self.name
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }
}

struct Entry<T> {
    name: String,
    digest: u64,
    value: T,
    /// Tells this entry from a later one of the same uid.
    id: u64,
}

/// What the registry holds for a key.
#[derive(Debug)]
pub enum Found<T> {
    /// The same request is in flight: its value.
    Same(T),
    /// A start of the same pod (uid and namespace/name) is in flight with
    /// another request.
    Differs,
    /// No start of this pod is in flight. (A start of another
    /// namespace/name under this uid is not this pod's: the start flow's
    /// identity check refuses it.)
    Absent,
}

/// The starts in flight. Cheap to clone; clones share the map.
pub struct InFlight<T> {
    entries: Arc<Mutex<HashMap<String, Entry<T>>>>,
    /// Keys the digest: random per process, so requests cannot be made to
    /// collide on purpose.
    keys: RandomState,
    next: Arc<AtomicU64>,
}

impl<T> Clone for InFlight<T> {
    fn clone(&self) -> Self {
        InFlight {
            entries: self.entries.clone(),
            keys: self.keys.clone(),
            next: self.next.clone(),
        }
    }
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            entries: Arc::default(),
            keys: RandomState::new(),
            next: Arc::default(),
        }
    }
}

impl<T> std::fmt::Debug for InFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("starts", &self.len())
            .finish_non_exhaustive()
    }
}

/// Keeps a start findable; dropped when the start has sent its terminal
/// event.
pub struct Registration<T> {
    uid: String,
    id: u64,
    entries: Weak<Mutex<HashMap<String, Entry<T>>>>,
}

impl<T> std::fmt::Debug for Registration<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Registration<T> {
    fn drop(&mut self) {
        let Some(map) = self.entries.upgrade() else {
            return;
        };
        let mut entries = map.lock().unwrap_or_else(|p| p.into_inner());
        if entries.get(&self.uid).is_some_and(|e| e.id == self.id) {
            entries.remove(&self.uid);
        }
    }
}

impl<T> InFlight<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many starts are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> InFlight<T> {
    /// The key of a start of pod `uid` (`namespace/name`) whose request's
    /// canonical encoding is `request`.
    pub fn key(&self, uid: &str, namespace: &str, name: &str, request: &[u8]) -> StartKey {
        StartKey {
            uid: uid.to_string(),
            name: pod_name(namespace, name),
            digest: self.keys.hash_one(request),
        }
    }

    fn found(entries: &HashMap<String, Entry<T>>, key: &StartKey) -> Found<T> {
        match entries.get(&key.uid) {
            Some(e) if e.name == key.name && e.digest == key.digest => Found::Same(e.value.clone()),
            Some(e) if e.name == key.name => Found::Differs,
            _ => Found::Absent,
        }
    }

    /// What is in flight for `key`.
    pub fn find(&self, key: &StartKey) -> Found<T> {
        Self::found(&self.lock(), key)
    }

    /// Like `find`, and when nothing is in flight for the pod, records the
    /// value `make` returns (its first part) as the pod's start, all at
    /// once: of two identical requests one leads and the other finds it.
    /// `Err` is `Same` or `Differs`. The registration is None when the
    /// uid is in flight as another namespace/name (that start leads; this
    /// one is refused by the identity check).
    pub fn join<S>(
        &self,
        key: &StartKey,
        make: impl FnOnce() -> (T, S),
    ) -> Result<(S, Option<Registration<T>>), Found<T>> {
        let mut entries = self.lock();
        match Self::found(&entries, key) {
            Found::Absent => {}
            found => return Err(found),
        }
        let (value, made) = make();
        if entries.contains_key(&key.uid) {
            return Ok((made, None));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        entries.insert(
            key.uid.clone(),
            Entry {
                name: key.name.clone(),
                digest: key.digest,
                value,
                id,
            },
        );
        Ok((
            made,
            Some(Registration {
                uid: key.uid.clone(),
                id,
                entries: Arc::downgrade(&self.entries),
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Joined = Result<(u32, Option<Registration<&'static str>>), Found<&'static str>>;

    fn lead(r: Joined) -> Registration<&'static str> {
        match r {
            Ok((_, Some(reg))) => reg,
            Ok((_, None)) => panic!("led without a registration"),
            Err(found) => panic!("expected to lead, found {found:?}"),
        }
    }

    #[test]
    fn the_same_request_finds_the_start_and_another_differs() {
        let starts = InFlight::<&'static str>::default();
        let key = starts.key("u1", "ns", "web", b"request one");
        assert!(matches!(starts.find(&key), Found::Absent));
        let reg = lead(starts.join(&key, || ("first", 1)));
        assert_eq!(starts.len(), 1);

        assert!(matches!(starts.find(&key), Found::Same("first")));
        assert!(matches!(
            starts.join(&key, || ("second", 2)),
            Err(Found::Same("first"))
        ));
        let other = starts.key("u1", "ns", "web", b"request two");
        assert!(matches!(starts.find(&other), Found::Differs));
        assert!(matches!(
            starts.join(&other, || ("third", 3)),
            Err(Found::Differs)
        ));
        // Another pod under the uid is not this pod's start: it goes on
        // (to be refused by the identity check) without replacing it.
        let renamed = starts.key("u1", "ns", "api", b"request one");
        assert!(matches!(starts.find(&renamed), Found::Absent));
        assert!(matches!(
            starts.join(&renamed, || ("fourth", 4)),
            Ok((4, None))
        ));
        assert!(matches!(starts.find(&key), Found::Same("first")));
        // Another uid is independent.
        let _b = lead(starts.join(&starts.key("u2", "ns", "b", b"x"), || ("b", 5)));
        assert_eq!(starts.len(), 2);

        drop(reg);
        assert!(matches!(starts.find(&key), Found::Absent));
        assert_eq!(starts.len(), 1);
    }

    #[test]
    fn a_late_registration_does_not_remove_the_next_start() {
        let starts = InFlight::<u8>::default();
        let key = starts.key("u1", "ns", "web", b"r");
        let first = match starts.join(&key, || (1, ())) {
            Ok((_, Some(reg))) => reg,
            _ => panic!("first leads"),
        };
        let first_id = first.id;
        drop(first);
        // A registration of the first start, dropped after the second
        // start took the uid, must leave the second's entry.
        let second = match starts.join(&key, || (2, ())) {
            Ok((_, Some(reg))) => reg,
            _ => panic!("second leads"),
        };
        let stale = Registration {
            uid: "u1".into(),
            id: first_id,
            entries: Arc::downgrade(&starts.entries),
        };
        drop(stale);
        assert!(matches!(starts.find(&key), Found::Same(2)));
        drop(second);
        assert!(starts.is_empty());
    }

    #[test]
    fn digests_are_of_the_bytes() {
        let starts = InFlight::<u8>::default();
        assert_eq!(
            starts.key("u", "n", "p", b"abc"),
            starts.key("u", "n", "p", b"abc")
        );
        assert_ne!(
            starts.key("u", "n", "p", b"abc"),
            starts.key("u", "n", "p", b"abd")
        );
    }
}
