//! The per-request types every step shares: what one StartPod (or
//! StartContainer) works with once its sandbox exists, and what starting
//! one container yields. Holds no behaviour beyond cancellation checks.
use std::{path::PathBuf, sync::Arc, time::Duration};

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{EventSink, StartError, prepull::PodImages};
use crate::node::Node;
use crate::proto::v1::{PodSpec, StartedContainer, StepTiming};

/// What one StartPod works with once the sandbox exists.
#[derive(Clone)]
pub(super) struct PodContext {
    pub pod: PodSpec,
    pub sandbox_id: String,
    pub sandbox_config: cri::PodSandboxConfig,
    pub ips: Vec<String>,
    pub log_dir: PathBuf,
    /// The image step's inputs and the pod's pre-pulls.
    pub images: Arc<PodImages>,
    pub sink: EventSink,
    pub cancel: CancellationToken,
    /// The node, for env vars read from the pod's fields and OOM scores.
    pub node: Arc<Node>,
}

impl PodContext {
    pub(super) fn check_cancelled(&self) -> Result<(), StartError> {
        if self.cancel.is_cancelled() {
            Err(StartError::Cancelled {
                why: "the pod is being stopped or podstart is shutting down",
            })
        } else {
            Ok(())
        }
    }

    /// Sleeps unless cancelled first.
    pub(super) async fn pause(&self, d: Duration) -> Result<(), StartError> {
        tokio::select! {
            _ = self.cancel.cancelled() => self.check_cancelled(),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }
}

/// One container that was started (or found running).
pub(super) struct Started {
    pub container: StartedContainer,
    pub timings: Vec<StepTiming>,
    /// Nothing was created: the container already ran.
    pub adopted: bool,
}
