//! What the node's containers were last seen doing, by container id and by
//! sandbox: the picture relists and events keep up to date. Pure; the
//! watcher (`mod.rs`) owns one behind a lock.
//!
//! Two rules keep it right while a relist and events race:
//! - a container's phase only moves forward (created → running → exited):
//!   a CRI container never runs again, a restart is a new container, so an
//!   older listing can never undo a newer event;
//! - a relist removes only containers it did not see *and* nobody touched
//!   since the relist began (a container created while the listing was on
//!   its way is not dropped for missing from it).
use std::collections::{HashMap, HashSet};

/// How far a container got. Ordered: a phase never goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The runtime could not say (CRI `CONTAINER_UNKNOWN`).
    Unknown,
    Created,
    Running,
    Exited,
}

impl Phase {
    /// The phase of a CRI `ContainerState` value.
    pub fn from_cri(state: i32) -> Phase {
        use k8s_cri::v1::ContainerState as S;
        match S::try_from(state) {
            Ok(S::ContainerCreated) => Phase::Created,
            Ok(S::ContainerRunning) => Phase::Running,
            Ok(S::ContainerExited) => Phase::Exited,
            Ok(S::ContainerUnknown) | Err(_) => Phase::Unknown,
        }
    }
}

/// One container as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub sandbox_id: String,
    /// The container's name in its pod.
    pub name: String,
    /// Which run of that name (the CRI metadata attempt).
    pub attempt: u32,
    pub phase: Phase,
}

/// How a container's main process ended, as the runtime's event said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    /// Nanoseconds since the epoch.
    pub finished_at: i64,
}

#[derive(Debug)]
struct Entry {
    seen: Seen,
    exit: Option<Exit>,
    /// The relist epoch in which an event or a tracked create last touched
    /// the entry.
    touched: u64,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Applied {
    /// The container's sandbox has news.
    Changed { sandbox_id: String },
    /// Nothing new.
    Unchanged,
    /// The container is not in the table: only a relist can place it.
    Unknown,
}

/// The node's containers.
#[derive(Debug, Default)]
pub(super) struct Table {
    entries: HashMap<String, Entry>,
    by_sandbox: HashMap<String, HashSet<String>>,
    epoch: u64,
    /// Containers an event deleted since the relist in progress began: its
    /// older listing must not bring them back.
    deleted: HashSet<String>,
}

impl Table {
    /// Marks the start of a relist; pass the epoch to [`Table::relisted`].
    pub(super) fn begin_relist(&mut self) -> u64 {
        self.epoch += 1;
        self.deleted.clear();
        self.epoch
    }

    /// Applies a full listing taken after `begin_relist` returned `epoch`.
    /// Returns the sandboxes with news.
    pub(super) fn relisted(&mut self, epoch: u64, listed: Vec<Seen>) -> HashSet<String> {
        let mut changed = HashSet::new();
        let listed_ids: HashSet<String> = listed.iter().map(|s| s.id.clone()).collect();
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(id, e)| e.touched < epoch && !listed_ids.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(sandbox_id) = self.remove(&id) {
                changed.insert(sandbox_id);
            }
        }
        for seen in listed {
            if self.deleted.contains(&seen.id) {
                continue;
            }
            if let Some(sandbox_id) = self.merge(seen, None) {
                changed.insert(sandbox_id);
            }
        }
        changed
    }

    /// A container seen by an event or made by the flow: added, or its
    /// phase moved forward. Returns its sandbox when that is news.
    pub(super) fn upsert(&mut self, seen: Seen) -> Option<String> {
        let epoch = self.epoch;
        self.merge(seen, Some(epoch))
    }

    /// A known container's phase moved (an event that names only the id).
    pub(super) fn advance(&mut self, id: &str, phase: Phase) -> Applied {
        let epoch = self.epoch;
        let Some(entry) = self.entries.get_mut(id) else {
            return Applied::Unknown;
        };
        entry.touched = epoch;
        if phase <= entry.seen.phase {
            return Applied::Unchanged;
        }
        entry.seen.phase = phase;
        Applied::Changed {
            sandbox_id: entry.seen.sandbox_id.clone(),
        }
    }

    /// A known container exited as `exit` says.
    pub(super) fn exited(&mut self, id: &str, exit: Exit) -> Applied {
        let applied = self.advance(id, Phase::Exited);
        if let Some(entry) = self.entries.get_mut(id) {
            entry.exit = Some(exit);
        }
        applied
    }

    /// How a container exited, when an event said.
    pub(super) fn exit(&self, id: &str) -> Option<Exit> {
        self.entries.get(id).and_then(|e| e.exit)
    }

    /// A container an event says was deleted: forgotten, and not brought
    /// back by a listing taken before.
    pub(super) fn deleted(&mut self, id: &str) -> Option<String> {
        self.deleted.insert(id.to_string());
        self.remove(id)
    }

    /// Forgets a container; returns its sandbox.
    pub(super) fn remove(&mut self, id: &str) -> Option<String> {
        let entry = self.entries.remove(id)?;
        let sandbox_id = entry.seen.sandbox_id;
        if let Some(ids) = self.by_sandbox.get_mut(&sandbox_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_sandbox.remove(&sandbox_id);
            }
        }
        Some(sandbox_id)
    }

    /// The containers of a sandbox, in no particular order.
    pub(super) fn of_sandbox(&self, sandbox_id: &str) -> Vec<Seen> {
        self.by_sandbox
            .get(sandbox_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.entries.get(id))
            .map(|e| e.seen.clone())
            .collect()
    }

    pub(super) fn phase(&self, id: &str) -> Option<Phase> {
        self.entries.get(id).map(|e| e.seen.phase)
    }

    /// How many containers the table holds.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn merge(&mut self, seen: Seen, touched: Option<u64>) -> Option<String> {
        match self.entries.get_mut(&seen.id) {
            Some(entry) => {
                if let Some(epoch) = touched {
                    entry.touched = epoch;
                }
                if seen.phase <= entry.seen.phase {
                    return None;
                }
                entry.seen.phase = seen.phase;
                Some(entry.seen.sandbox_id.clone())
            }
            None => {
                let sandbox_id = seen.sandbox_id.clone();
                self.by_sandbox
                    .entry(sandbox_id.clone())
                    .or_default()
                    .insert(seen.id.clone());
                self.entries.insert(
                    seen.id.clone(),
                    Entry {
                        seen,
                        exit: None,
                        touched: touched.unwrap_or(0),
                    },
                );
                Some(sandbox_id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, sandbox: &str, phase: Phase) -> Seen {
        Seen {
            id: id.into(),
            sandbox_id: sandbox.into(),
            name: format!("name-{id}"),
            attempt: 0,
            phase,
        }
    }

    fn ids(mut v: Vec<Seen>) -> Vec<String> {
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn phases_only_move_forward() {
        let mut t = Table::default();
        assert_eq!(
            t.upsert(seen("c1", "s1", Phase::Running)),
            Some("s1".into())
        );
        // An older listing saying "created" does not undo "running".
        let epoch = t.begin_relist();
        let changed = t.relisted(epoch, vec![seen("c1", "s1", Phase::Created)]);
        assert!(changed.is_empty());
        assert_eq!(t.phase("c1"), Some(Phase::Running));
        assert_eq!(
            t.advance("c1", Phase::Exited),
            Applied::Changed {
                sandbox_id: "s1".into()
            }
        );
        assert_eq!(t.advance("c1", Phase::Running), Applied::Unchanged);
        assert_eq!(t.advance("c1", Phase::Exited), Applied::Unchanged);
        assert_eq!(t.phase("c1"), Some(Phase::Exited));
    }

    #[test]
    fn an_exit_event_keeps_its_code_and_time() {
        let mut t = Table::default();
        t.upsert(seen("c1", "s1", Phase::Running));
        let exit = Exit {
            code: 0,
            finished_at: 42,
        };
        assert_eq!(t.exit("c1"), None);
        assert_eq!(
            t.exited("c1", exit),
            Applied::Changed {
                sandbox_id: "s1".into()
            }
        );
        assert_eq!(t.exit("c1"), Some(exit));
        assert_eq!(t.phase("c1"), Some(Phase::Exited));
        // A later listing keeps it.
        let epoch = t.begin_relist();
        t.relisted(epoch, vec![seen("c1", "s1", Phase::Exited)]);
        assert_eq!(t.exit("c1"), Some(exit));
        assert_eq!(t.exited("nope", exit), Applied::Unknown);
        assert_eq!(t.exit("nope"), None);
    }

    #[test]
    fn advancing_an_unknown_container_asks_for_a_relist() {
        let mut t = Table::default();
        assert_eq!(t.advance("nope", Phase::Exited), Applied::Unknown);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_relist_adds_news_and_removes_what_vanished() {
        let mut t = Table::default();
        let epoch = t.begin_relist();
        let changed = t.relisted(
            epoch,
            vec![
                seen("a", "s1", Phase::Running),
                seen("b", "s1", Phase::Running),
                seen("c", "s2", Phase::Exited),
            ],
        );
        assert_eq!(changed, HashSet::from(["s1".into(), "s2".into()]));
        assert_eq!(t.len(), 3);

        let epoch = t.begin_relist();
        let changed = t.relisted(
            epoch,
            vec![
                seen("a", "s1", Phase::Exited),
                seen("b", "s1", Phase::Running),
            ],
        );
        assert_eq!(changed, HashSet::from(["s1".into(), "s2".into()]));
        assert_eq!(ids(t.of_sandbox("s1")), ["a", "b"]);
        assert!(t.of_sandbox("s2").is_empty());
        assert_eq!(t.phase("c"), None);
        assert_eq!(t.phase("a"), Some(Phase::Exited));

        // Nothing new: nothing to tell.
        let epoch = t.begin_relist();
        let changed = t.relisted(
            epoch,
            vec![
                seen("a", "s1", Phase::Exited),
                seen("b", "s1", Phase::Running),
            ],
        );
        assert!(changed.is_empty());
    }

    #[test]
    fn a_container_touched_during_a_relist_survives_its_absence() {
        let mut t = Table::default();
        let epoch = t.begin_relist();
        t.relisted(epoch, vec![seen("old", "s1", Phase::Running)]);

        // The listing is on its way when the flow creates "new" and an
        // event moves "old"; the listing saw neither.
        let epoch = t.begin_relist();
        t.upsert(seen("new", "s1", Phase::Created));
        t.advance("old", Phase::Exited);
        let changed = t.relisted(epoch, vec![]);
        assert!(changed.is_empty());
        assert_eq!(ids(t.of_sandbox("s1")), ["new", "old"]);

        // The next listing without them removes them.
        let epoch = t.begin_relist();
        let changed = t.relisted(epoch, vec![]);
        assert_eq!(changed, HashSet::from(["s1".into()]));
        assert_eq!(t.len(), 0);
        assert!(t.of_sandbox("s1").is_empty());
    }

    #[test]
    fn a_listing_older_than_a_delete_does_not_bring_the_container_back() {
        let mut t = Table::default();
        t.upsert(seen("c1", "s1", Phase::Exited));
        let epoch = t.begin_relist();
        // Deleted while the listing (which still has it) was on its way.
        assert_eq!(t.deleted("c1"), Some("s1".into()));
        let changed = t.relisted(epoch, vec![seen("c1", "s1", Phase::Exited)]);
        assert!(changed.is_empty());
        assert_eq!(t.phase("c1"), None);
        // A later listing that has it again (an id reused) places it.
        let epoch = t.begin_relist();
        t.relisted(epoch, vec![seen("c1", "s1", Phase::Running)]);
        assert_eq!(t.phase("c1"), Some(Phase::Running));
    }

    #[test]
    fn remove_reports_the_sandbox_once() {
        let mut t = Table::default();
        t.upsert(seen("a", "s1", Phase::Running));
        t.upsert(seen("b", "s1", Phase::Running));
        assert_eq!(t.remove("a"), Some("s1".into()));
        assert_eq!(t.remove("a"), None);
        assert_eq!(ids(t.of_sandbox("s1")), ["b"]);
        assert_eq!(t.remove("b"), Some("s1".into()));
        assert!(t.of_sandbox("s1").is_empty());
    }

    #[test]
    fn cri_states_map_to_phases() {
        use k8s_cri::v1::ContainerState as S;
        assert_eq!(Phase::from_cri(S::ContainerCreated as i32), Phase::Created);
        assert_eq!(Phase::from_cri(S::ContainerRunning as i32), Phase::Running);
        assert_eq!(Phase::from_cri(S::ContainerExited as i32), Phase::Exited);
        assert_eq!(Phase::from_cri(S::ContainerUnknown as i32), Phase::Unknown);
        assert_eq!(Phase::from_cri(99), Phase::Unknown);
    }
}
