//! Runtime look-ups and clean-ups several steps share: the instances of a
//! container in a sandbox, and removing a sandbox. Plain CRI calls, no
//! events.
use std::collections::HashMap;

use k8s_cri::v1 as cri;

use crate::cri::{Cri, CriError};
use crate::spec::labels;

/// The containers of the sandbox that carry `name`, newest first.
pub(super) async fn previous_instances(
    cri: &Cri,
    sandbox_id: &str,
    name: &str,
) -> Result<Vec<cri::Container>, CriError> {
    let selector = HashMap::from([(labels::CONTAINER_NAME.to_string(), name.to_string())]);
    let mut found = cri.list_containers(Some(sandbox_id), selector).await?;
    found.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
    Ok(found)
}

/// StopPodSandbox (a sandbox already gone is fine), then RemovePodSandbox.
pub(super) async fn remove_sandbox(cri: &Cri, id: &str) -> Result<(), CriError> {
    match cri.stop_pod_sandbox(id).await {
        Err(e) if !e.is_not_found() => return Err(e),
        _ => {}
    }
    cri.remove_pod_sandbox(id).await
}
