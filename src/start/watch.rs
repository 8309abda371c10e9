//! Waiting for a container to exit: through CRI `GetContainerEvents` where
//! the runtime has it (a wake-up per event of that container, plus a slow
//! safety re-check), otherwise by polling ContainerStatus with a pause that
//! grows to `status_poll_max`. Never a busy loop. Once a runtime answers
//! UNIMPLEMENTED (containerd before 1.7), podstart stops asking it.
use std::{sync::atomic::Ordering, time::Duration};

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{ContainerRef, StartError, Starter};

/// First pause between two polls.
const FIRST_POLL: Duration = Duration::from_millis(20);
/// With an event stream, the status is still re-read this often, in case an
/// event was lost.
const SAFETY_RECHECK: Duration = Duration::from_secs(5);

impl Starter {
    /// Returns the container's status once it has exited.
    pub(super) async fn wait_for_exit(
        &self,
        cancel: &CancellationToken,
        cref: &ContainerRef,
        id: &str,
    ) -> Result<cri::ContainerStatus, StartError> {
        let mut events = self.container_events().await;
        let mut delay = FIRST_POLL;
        loop {
            let status = self.status_of(cref, id).await?;
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return Ok(status);
            }
            match events.as_mut() {
                Some(stream) => {
                    let woke = tokio::select! {
                        _ = cancel.cancelled() => return Err(cancelled()),
                        woke = next_event_of(stream, id) => woke,
                        _ = tokio::time::sleep(SAFETY_RECHECK) => true,
                    };
                    if !woke {
                        // The stream ended: carry on by polling.
                        events = None;
                    }
                }
                None => {
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(cancelled()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.inner.config.status_poll_max);
                }
            }
        }
    }

    /// A container event stream, unless the runtime has none.
    pub(super) async fn container_events(
        &self,
    ) -> Option<tonic::Streaming<cri::ContainerEventResponse>> {
        if self.inner.events_unsupported.load(Ordering::Relaxed) {
            return None;
        }
        match self.inner.cri.get_container_events().await {
            Ok(stream) => Some(stream),
            Err(e) => {
                if e.code() == tonic::Code::Unimplemented {
                    tracing::info!(
                        "the runtime has no GetContainerEvents; waiting on containers by polling"
                    );
                    self.inner.events_unsupported.store(true, Ordering::Relaxed);
                } else {
                    tracing::debug!(error = %e, "container events unavailable; polling");
                }
                None
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

/// Waits for an event about container `id`: true when one came, false when
/// the stream ended or failed.
pub(super) async fn next_event_of(
    stream: &mut tonic::Streaming<cri::ContainerEventResponse>,
    id: &str,
) -> bool {
    loop {
        match stream.message().await {
            Ok(Some(event)) if event.container_id == id => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

fn cancelled() -> StartError {
    StartError::Cancelled {
        why: "the pod is being stopped or podstart is shutting down",
    }
}
