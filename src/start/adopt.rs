//! Creates whose outcome is uncertain. RunPodSandbox and CreateContainer
//! are never retried blindly: after a timeout or a lost connection the
//! runtime may have made the object anyway (and keeps its name reserved).
//! These calls look it up by its labels and adopt it when it is usable, or
//! remove the leftover and create once more.
use k8s_cri::v1 as cri;

use super::runtime::{previous_instances, remove_sandbox};
use crate::cri::{Cri, CriError};
use crate::proto::v1::PodSpec;
use crate::state::view;

/// True when the call may have taken effect although it failed.
pub(super) fn uncertain(err: &CriError) -> bool {
    match err {
        CriError::Timeout { .. } => true,
        CriError::Call { status, .. } => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        CriError::InvalidEndpoint { .. } | CriError::InvalidResponse { .. } => false,
    }
}

/// True when the runtime refused a create because the object's name is
/// held: containerd says "failed to reserve sandbox name ...: name ... is
/// reserved for ...", CRI-O "error reserving pod name ...: name is
/// reserved".
pub(super) fn name_taken(err: &CriError) -> bool {
    match err {
        CriError::Call { status, .. } => status.message().contains("is reserved"),
        _ => false,
    }
}

/// What a look-up after an uncertain create found.
pub(super) enum Found {
    /// A usable object: carry on with it.
    Adopt(String),
    /// Nothing (left) in the way: create again.
    Retry,
}

/// RunPodSandbox (or what it left) for `pod`: a ready sandbox of this
/// attempt is adopted, anything else of the pod is removed.
pub(super) async fn after_uncertain_sandbox(cri: &Cri, pod: &PodSpec) -> Result<Found, CriError> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let filter = view::PodFilter {
        uid: Some(meta.uid.clone()),
        ..Default::default()
    };
    for s in view::sandboxes(cri, &filter).await? {
        let ours = s
            .metadata
            .as_ref()
            .is_some_and(|m| m.attempt == meta.attempt);
        if ours && s.state == cri::PodSandboxState::SandboxReady as i32 {
            tracing::info!(sandbox = %s.id, "adopting the sandbox an uncertain RunPodSandbox made");
            return Ok(Found::Adopt(s.id));
        }
        remove_sandbox(cri, &s.id).await?;
    }
    Ok(Found::Retry)
}

/// CreateContainer (or what it left) for `name` at `attempt` in the pod's
/// sandbox `sandbox_id`: a CREATED container is adopted, others removed.
pub(super) async fn after_uncertain_container(
    cri: &Cri,
    sandbox_id: &str,
    name: &str,
    attempt: u32,
) -> Result<Found, CriError> {
    for c in previous_instances(cri, sandbox_id, name).await? {
        if c.metadata.as_ref().is_none_or(|m| m.attempt != attempt) {
            continue;
        }
        if c.state == cri::ContainerState::ContainerCreated as i32 {
            tracing::info!(container = %c.id, "adopting the container an uncertain CreateContainer made");
            return Ok(Found::Adopt(c.id));
        }
        cri.remove_container(&c.id).await?;
    }
    Ok(Found::Retry)
}
