//! Waiting for a container to exit, through the node's watcher (`pleg/`):
//! a wake-up when anything about the container's sandbox changes, the exit
//! read from the table, then one ContainerStatus for its code and reason.
//! No stream or poll loop per waiter. A slow safety re-read covers a watcher
//! that missed the container (made by an earlier podstart, say).
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{ContainerRef, StartError, Starter};
use crate::pleg::Phase;

/// Without news, the status is still re-read this often.
const SAFETY_RECHECK: Duration = Duration::from_secs(5);
/// First pause when the watcher saw the exit before the runtime's status
/// shows it (containerd's CRI handles the same task exit a moment later).
const CATCH_UP_FIRST: Duration = Duration::from_millis(2);
/// Longest such pause.
const CATCH_UP_MAX: Duration = Duration::from_millis(200);

impl Starter {
    /// Returns the container's status once it has exited.
    pub(super) async fn wait_for_exit(
        &self,
        cancel: &CancellationToken,
        cref: &ContainerRef,
        sandbox_id: &str,
        id: &str,
    ) -> Result<cri::ContainerStatus, StartError> {
        let pleg = &self.inner.pleg;
        let mut changes = pleg.subscribe(sandbox_id);
        // Read the runtime first: the container may be done already.
        let mut read = true;
        let mut catch_up = CATCH_UP_FIRST;
        loop {
            changes.mark_seen();
            let seen_exited = pleg.phase(id) == Some(Phase::Exited);
            if read || seen_exited {
                let status = self.status_of(cref, id).await?;
                if status.state == cri::ContainerState::ContainerExited as i32 {
                    return Ok(status);
                }
            }
            read = false;
            let pause = if seen_exited {
                // The watcher is ahead of the runtime's status: look again
                // soon rather than wait for news that already came.
                let pause = catch_up;
                catch_up = (catch_up * 2).min(CATCH_UP_MAX);
                pause
            } else {
                SAFETY_RECHECK
            };
            tokio::select! {
                _ = cancel.cancelled() => return Err(cancelled()),
                alive = changes.changed() => {
                    if !alive {
                        return Err(cancelled());
                    }
                }
                _ = tokio::time::sleep(pause) => read = true,
            }
        }
    }

    pub(super) async fn status_of(
        &self,
        cref: &ContainerRef,
        id: &str,
    ) -> Result<cri::ContainerStatus, StartError> {
        self.inner
            .cri
            .container_status(id)
            .await
            .map_err(|source| StartError::ContainerStatus {
                container: cref.name.clone(),
                source,
            })
    }
}

fn cancelled() -> StartError {
    StartError::Cancelled {
        why: "the pod is being stopped or podstart is shutting down",
    }
}
