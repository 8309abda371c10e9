//! The per-request types every step shares: what one StartPod (or
//! StartContainer) works with once its sandbox exists, and what starting
//! one container yields. Holds no behaviour beyond cancellation checks.
use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{EventSink, StartError, precreate::PreCreates, prepull::PodImages};
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
    /// Which containers may already have instances in the sandbox.
    pub instances: Instances,
    /// App containers being made ahead of their turn.
    pub precreates: Arc<PreCreates>,
}

/// What a start knows of the containers in its sandbox. In a sandbox this
/// start created, a container it has not tried to create yet has no
/// instance: its start needs no look-up of earlier ones. Anywhere else
/// (an adopted sandbox, recovery, StartContainer) every container is
/// looked up.
#[derive(Clone, Default)]
pub(super) struct Instances {
    /// For a new sandbox: the containers a create was tried for.
    tried: Option<Arc<Mutex<HashSet<String>>>>,
}

impl Instances {
    /// The sandbox was just created: none of its containers exists yet.
    pub(super) fn of_new_sandbox() -> Self {
        Self {
            tried: Some(Arc::default()),
        }
    }

    /// True when this start made the sandbox.
    pub(super) fn is_new_sandbox(&self) -> bool {
        self.tried.is_some()
    }

    /// True when `container` certainly has no instance in the sandbox.
    pub(super) fn none_yet(&self, container: &str) -> bool {
        self.tried.as_ref().is_some_and(|tried| {
            !tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(container)
        })
    }

    /// Notes that a create of `container` is about to be sent: from here
    /// on it may have instances.
    pub(super) fn creating(&self, container: &str) {
        if let Some(tried) = &self.tried {
            tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(container.to_string());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Instances;

    #[test]
    fn a_new_sandbox_has_no_instances_until_a_create_is_tried() {
        let fresh = Instances::of_new_sandbox();
        assert!(fresh.is_new_sandbox());
        assert!(fresh.none_yet("a"));
        fresh.creating("a");
        assert!(!fresh.none_yet("a"));
        assert!(fresh.none_yet("b"), "other containers are untouched");
        let shared = fresh.clone();
        shared.creating("b");
        assert!(!fresh.none_yet("b"), "clones share what was tried");
    }

    #[test]
    fn elsewhere_every_container_is_looked_up() {
        let unknown = Instances::default();
        assert!(!unknown.is_new_sandbox(), "nothing is made ahead there");
        assert!(!unknown.none_yet("a"));
        unknown.creating("a");
        assert!(!unknown.none_yet("a"));
    }
}
