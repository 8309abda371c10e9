//! Waiting for a container to exit, through the node's watcher (`pleg/`):
//! a wake-up when anything about the container's sandbox changes, the exit
//! read from the table, then one ContainerStatus for its code and reason.
//! No stream or poll loop per waiter. A slow safety re-read covers a watcher
//! that missed the container (made by an earlier podstart, say).
//!
//! containerd's TaskExit event comes tens of milliseconds before its CRI
//! status shows the exit (the CRI plugin first deletes the task). A
//! successful exit the event reports is taken at once: code 0, the event's
//! time, reason `Completed` — all a success needs (its termination message
//! file was written before the process ended). Any other exit waits for the
//! runtime's status, whose reason (`Error`, `OOMKilled`) and log tail the
//! event does not have.
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{ContainerRef, StartError, Starter};
use crate::pleg::{Exit, Phase};

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
        let mut last: Option<cri::ContainerStatus> = None;
        loop {
            changes.mark_seen();
            let seen_exited = pleg.phase(id) == Some(Phase::Exited);
            if let (true, Some(exit), Some(last)) = (seen_exited, pleg.exit(id), &last)
                && let Some(status) = completed_from_event(last, exit)
            {
                return Ok(status);
            }
            if read || seen_exited {
                let status = self.status_of(cref, id).await?;
                if status.state == cri::ContainerState::ContainerExited as i32 {
                    return Ok(status);
                }
                last = Some(status);
                if seen_exited && pleg.exit(id).is_some_and(|e| e.code == 0) {
                    continue; // taken from the event at the top
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

/// The status of a container whose successful exit an event reported,
/// made from its last status as the runtime's would read once it catches
/// up; `None` for any other exit.
fn completed_from_event(last: &cri::ContainerStatus, exit: Exit) -> Option<cri::ContainerStatus> {
    (exit.code == 0).then(|| cri::ContainerStatus {
        state: cri::ContainerState::ContainerExited as i32,
        exit_code: 0,
        finished_at: exit.finished_at,
        reason: "Completed".into(),
        message: String::new(),
        ..last.clone()
    })
}

fn cancelled() -> StartError {
    StartError::Cancelled {
        why: "the pod is being stopped or podstart is shutting down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: "c1".into(),
            state: cri::ContainerState::ContainerRunning as i32,
            started_at: 10,
            log_path: "/var/log/pods/x/c/0.log".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_successful_exit_event_completes_the_status() {
        let exit = Exit {
            code: 0,
            finished_at: 99,
        };
        let status = completed_from_event(&running(), exit).expect("code 0 is taken");
        assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!(status.exit_code, 0);
        assert_eq!(status.finished_at, 99);
        assert_eq!(status.started_at, 10);
        assert_eq!(status.reason, "Completed");
        assert_eq!(status.log_path, "/var/log/pods/x/c/0.log");
    }

    #[test]
    fn a_failed_exit_waits_for_the_runtime() {
        for code in [1, 137, -1] {
            let exit = Exit {
                code,
                finished_at: 99,
            };
            assert_eq!(completed_from_event(&running(), exit), None, "code {code}");
        }
    }
}
