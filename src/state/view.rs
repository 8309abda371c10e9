//! Pods and containers as the runtime reports them, found through the labels
//! podstart puts on every sandbox and container.
use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use k8s_cri::v1 as cri;

use crate::cri::{Cri, CriError};
use crate::proto::v1::{ContainerState, ContainerStatus, Pod, PodRef, SandboxState};
use crate::spec::labels;
use crate::spec::sandbox::pod_ips;

use super::{IdentityConflict, pod_name};

/// Which pods to report.
#[derive(Debug, Default, Clone)]
pub struct PodFilter {
    pub uid: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Pod labels that must all match.
    pub labels: HashMap<String, String>,
}

impl From<&PodRef> for PodFilter {
    fn from(r: &PodRef) -> PodFilter {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        PodFilter {
            uid: some(&r.uid),
            namespace: some(&r.namespace),
            name: some(&r.name),
            labels: HashMap::new(),
        }
    }
}

impl PodFilter {
    fn selector(&self) -> HashMap<String, String> {
        let mut sel = self.labels.clone();
        sel.insert(labels::MANAGED.into(), labels::MANAGED_VALUE.into());
        if let Some(uid) = &self.uid {
            sel.insert(labels::POD_UID.into(), uid.clone());
        }
        if let Some(ns) = &self.namespace {
            sel.insert(labels::POD_NAMESPACE.into(), ns.clone());
        }
        if let Some(name) = &self.name {
            sel.insert(labels::POD_NAME.into(), name.clone());
        }
        sel
    }
}

/// Every sandbox podstart made that matches `filter`, newest first.
pub async fn sandboxes(cri: &Cri, filter: &PodFilter) -> Result<Vec<cri::PodSandbox>, CriError> {
    let mut found = cri.list_pod_sandboxes(filter.selector()).await?;
    found.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(found)
}

/// Whether the node's sandboxes (found through podstart's labels, so this
/// holds after a restart) give `uid` another namespace/name — any sandbox
/// of the uid counts, since it is that pod's until a StopPod removes it —
/// or run `namespace/name` (a ready sandbox) under another uid. Also
/// returns the uid's sandboxes it listed, for a start to use when nothing
/// changed them since.
pub async fn identity_conflict(
    cri: &Cri,
    uid: &str,
    namespace: &str,
    name: &str,
) -> Result<(Option<IdentityConflict>, Vec<cri::PodSandbox>), CriError> {
    let requested = pod_name(namespace, name);
    let by_uid = PodFilter {
        uid: Some(uid.to_string()),
        ..Default::default()
    };
    let by_name = PodFilter {
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..Default::default()
    };
    // Two independent look-ups: one round trip's time, not two.
    let (with_uid, with_name) =
        tokio::try_join!(sandboxes(cri, &by_uid), sandboxes(cri, &by_name))?;
    for s in &with_uid {
        let Some(m) = &s.metadata else { continue };
        let known = pod_name(&m.namespace, &m.name);
        if known != requested {
            let conflict = IdentityConflict::UidTaken {
                uid: uid.to_string(),
                known,
                requested,
            };
            return Ok((Some(conflict), with_uid));
        }
    }
    let running = with_name.into_iter().find(|s| {
        s.state == cri::PodSandboxState::SandboxReady as i32
            && s.metadata.as_ref().is_some_and(|m| m.uid != uid)
    });
    let conflict = running
        .and_then(|s| s.metadata)
        .map(|m| IdentityConflict::NameTaken {
            name: requested,
            known: m.uid,
            requested: uid.to_string(),
        });
    Ok((conflict, with_uid))
}

/// The pod's current sandbox: the newest ready one, else the newest.
fn current(sandboxes: &[cri::PodSandbox]) -> Option<&cri::PodSandbox> {
    sandboxes
        .iter()
        .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .or_else(|| sandboxes.first())
}

/// How many sandbox and container look-ups one listing makes at once.
const LOOKUPS_AT_ONCE: usize = 32;

/// The pods matching `filter`, one per uid. With `detail`, each container's
/// full status (exit code, timestamps, reason) is read too. The containers
/// come from one ListContainers (the node's, or the one sandbox's), not one
/// per pod; the per-pod look-ups that remain (the sandbox's IPs, with
/// `detail` each container's status) run a few at a time.
pub async fn pods(cri: &Cri, filter: &PodFilter, detail: bool) -> Result<Vec<Pod>, CriError> {
    let all = sandboxes(cri, filter).await?;
    let mut by_uid: HashMap<String, Vec<cri::PodSandbox>> = HashMap::new();
    for s in all {
        let uid = s
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        by_uid.entry(uid).or_default().push(s);
    }
    let current: Vec<cri::PodSandbox> = by_uid
        .values()
        .filter_map(|g| current(g))
        .cloned()
        .collect();
    let only = match current.as_slice() {
        [one] => Some(one.id.as_str()),
        _ => None,
    };
    let mut containers: HashMap<String, Vec<cri::Container>> = HashMap::new();
    if !current.is_empty() {
        for c in cri.list_containers(only, HashMap::new()).await? {
            containers
                .entry(c.pod_sandbox_id.clone())
                .or_default()
                .push(c);
        }
    }
    let lookups: Vec<_> = current
        .into_iter()
        .map(|sandbox| {
            let theirs = containers.remove(&sandbox.id).unwrap_or_default();
            pod(cri, sandbox, theirs, detail)
        })
        .collect();
    let mut pods: Vec<Pod> = futures::stream::iter(lookups)
        .buffer_unordered(LOOKUPS_AT_ONCE)
        .try_collect()
        .await?;
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(pods)
}

async fn pod(
    cri: &Cri,
    sandbox: cri::PodSandbox,
    listed: Vec<cri::Container>,
    detail: bool,
) -> Result<Pod, CriError> {
    let meta = sandbox.metadata.clone().unwrap_or_default();
    let ready = sandbox.state == cri::PodSandboxState::SandboxReady as i32;
    let ips = if ready {
        match cri.pod_sandbox_status(&sandbox.id).await {
            Ok(status) => {
                let host_network = status
                    .linux
                    .as_ref()
                    .and_then(|l| l.namespaces.as_ref())
                    .and_then(|n| n.options.as_ref())
                    .is_some_and(|o| o.network == cri::NamespaceMode::Node as i32);
                pod_ips(&status, host_network)
            }
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        }
    } else {
        Vec::new()
    };
    let mut containers = Vec::new();
    for c in listed {
        let status = if detail {
            match cri.container_status(&c.id).await {
                Ok(s) => Some(s),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        containers.push(container_status(&c, status.as_ref()));
    }
    containers.sort_by_key(|c| (c.kind, c.created_at_unix_nano));
    let mut pod = Pod {
        uid: meta.uid,
        name: meta.name,
        namespace: meta.namespace,
        attempt: meta.attempt,
        sandbox_id: sandbox.id,
        ips,
        created_at_unix_nano: sandbox.created_at,
        labels: sandbox.labels,
        containers,
        ..Default::default()
    };
    pod.set_state(if ready {
        SandboxState::Ready
    } else {
        SandboxState::NotReady
    });
    Ok(pod)
}

fn container_status(c: &cri::Container, status: Option<&cri::ContainerStatus>) -> ContainerStatus {
    let state = status.map_or(c.state, |s| s.state);
    let mut out = ContainerStatus {
        name: c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default(),
        id: c.id.clone(),
        image: c
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default(),
        image_ref: c.image_ref.clone(),
        restart_count: c.metadata.as_ref().map_or(0, |m| m.attempt),
        created_at_unix_nano: c.created_at,
        ..Default::default()
    };
    out.set_kind(labels::container_kind_from_labels(&c.labels));
    out.set_state(container_state(state));
    if let Some(s) = status {
        out.exit_code = s.exit_code;
        out.reason.clone_from(&s.reason);
        out.message.clone_from(&s.message);
        out.started_at_unix_nano = s.started_at;
        out.finished_at_unix_nano = s.finished_at;
        out.log_path.clone_from(&s.log_path);
        if let Some(image) = &s.image {
            out.image.clone_from(&image.image);
        }
    }
    out
}

pub fn container_state(cri_state: i32) -> ContainerState {
    match cri::ContainerState::try_from(cri_state) {
        Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(cri::ContainerState::ContainerExited) => ContainerState::Exited,
        Ok(cri::ContainerState::ContainerUnknown) | Err(_) => ContainerState::Unknown,
    }
}
