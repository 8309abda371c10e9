//! App containers made ahead of their turn. While the init containers run
//! (or an earlier app container starts and runs its PostStart hook), the
//! pod's app containers are created one after another in declaration
//! order: image settled by its pre-pull, config built, CreateContainer.
//! The pod cannot observe it (a created container has no process) and
//! nothing is reported early: at each container's turn its image event,
//! then `Created` (with the create's own duration), then StartContainer,
//! in the kubelet's order — start order and events are unchanged; only
//! the create's round trip is off the path.
//!
//! Only in a sandbox this start made, only with pre-pulls, and never for a
//! container with a subPath mount (its path is resolved and checked at its
//! turn, after the init containers that may prepare it). Containers whose
//! turn never comes (the pod failed or was stopped first) are removed when
//! the start ends ([`PreCreates::discard`]).
use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::prepull::{PodImages, PrePulled};
use crate::cri::Cri;

/// A container CreateContainer made, not yet reported.
pub(super) struct Made {
    pub id: String,
    pub restart_count: u32,
    pub log_path: String,
    /// How long CreateContainer took.
    pub took: std::time::Duration,
}

/// What was done ahead for one container.
pub(super) struct Ahead {
    /// Its pre-pull's outcome, for its turn to report.
    pub pre: Option<PrePulled>,
    /// The container, when it could be made.
    pub made: Option<Made>,
}

/// The containers of one start being made ahead, by name (`ahead.rs`
/// fills it).
#[derive(Default)]
pub(super) struct PreCreates {
    pub slots: Mutex<HashMap<String, oneshot::Receiver<Ahead>>>,
    /// Ends the work ahead (the start is over).
    pub stop: CancellationToken,
    pub work: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PreCreates {
    /// The container made ahead for `name`, waiting for it if its create is
    /// in flight; its pre-pull's outcome goes back to `images` for the
    /// turn's image step. `None`: the turn creates it as usual.
    pub(super) async fn take(&self, name: &str, images: &PodImages) -> Option<Made> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)?;
        let ahead = slot.await.ok()?;
        if let Some(pre) = ahead.pre {
            images.put_back(name, pre);
        }
        ahead.made
    }

    /// Ends the work ahead and removes every container made for a turn
    /// that never came.
    pub(super) async fn discard(&self, cri: &Cri) {
        self.stop.cancel();
        let work = self
            .work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(work) = work {
            // Lets a create in flight finish, so its container is known.
            let _ = work.await;
        }
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for mut slot in slots {
            if let Ok(Ahead {
                made: Some(made), ..
            }) = slot.try_recv()
            {
                remove_unused(cri, &made.id).await;
            }
        }
    }
}

/// Removes a container made ahead that will not be started.
pub(super) async fn remove_unused(cri: &Cri, id: &str) {
    if let Err(e) = cri.remove_container(id).await
        && !e.is_not_found()
    {
        tracing::warn!(container = %id, error = %e, "removing a container made ahead");
    }
}
