//! The volume step: after the sandbox exists and before any container is
//! created, every volume of the pod is set up (`volumes::set_up`, which
//! reuses what a previous run made); at StopPod, after the containers and
//! the sandbox are gone, they are unmounted and removed
//! (`volumes::tear_down`). Disk and mount work runs off the async threads.
use super::{EventSink, StartError, Starter};
use crate::proto::v1::{PodSpec, StartEvent, Step};
use crate::volumes::{self, NodeAllocatable};

impl Starter {
    /// Sets up the pod's volumes; a failure is reported as FailedMount.
    pub(super) async fn set_up_volumes(
        &self,
        pod: &PodSpec,
        sink: &EventSink,
    ) -> Result<(), StartError> {
        if pod.volumes.is_empty() {
            return Ok(());
        }
        let root = self.inner.config.pod_volume_root.clone();
        let spec = pod.clone();
        let allocatable = self.inner.config.node.allocatable;
        let node = NodeAllocatable {
            cpu_millis: allocatable.cpu_millis,
            memory_bytes: allocatable.memory_bytes,
        };
        let result = tokio::task::spawn_blocking(move || volumes::set_up(&root, &spec, node))
            .await
            .map_err(|e| StartError::TaskFailed(e.to_string()))?;
        match result {
            Ok(warnings) => {
                for w in warnings {
                    sink.emit(
                        StartEvent::at(Step::Sandbox, "EmptyDirOverLimit", w.message).warning(),
                    )
                    .await;
                }
                Ok(())
            }
            Err(e) => {
                let err = StartError::Volume(e);
                sink.emit(StartEvent::at(Step::Sandbox, "FailedMount", err.to_string()).warning())
                    .await;
                Err(err)
            }
        }
    }

    /// Unmounts and removes the pod's volumes; what stays is reported, and
    /// never fails the stop.
    pub(super) async fn tear_down_volumes(&self, uid: &str, sink: &EventSink) {
        let root = self.inner.config.pod_volume_root.clone();
        let pod_uid = uid.to_string();
        let result = tokio::task::spawn_blocking(move || volumes::tear_down(&root, &pod_uid)).await;
        let dir = volumes::layout::pod_dir(&self.inner.config.pod_volume_root, uid)
            .map_or_else(|_| uid.to_string(), |d| d.display().to_string());
        match result {
            Ok(Ok(done)) if done.existed && done.kept.is_empty() => {
                sink.emit(StartEvent::at(
                    Step::Remove,
                    "VolumesRemoved",
                    format!("Removed {} pod volume(s) in {dir}", done.volumes),
                ))
                .await;
            }
            Ok(Ok(done)) if !done.kept.is_empty() => {
                sink.emit(
                    StartEvent::at(
                        Step::Remove,
                        "VolumesKept",
                        format!(
                            "Kept pod volume directory {dir}: {} entr{} podstart could not \
                             remove, such as {}",
                            done.kept.len(),
                            if done.kept.len() == 1 { "y" } else { "ies" },
                            done.kept[0].display()
                        ),
                    )
                    .warning(),
                )
                .await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                sink.emit(
                    StartEvent::at(
                        Step::Remove,
                        "VolumesKept",
                        format!("Failed to remove pod volumes in {dir}: {e}"),
                    )
                    .warning(),
                )
                .await;
            }
            Err(e) => tracing::warn!(error = %e, "removing the pod's volumes"),
        }
    }
}
