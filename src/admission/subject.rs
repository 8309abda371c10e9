//! What the checks look at — a pod's own fields and its containers in
//! Kubernetes' visiting order (init and sidecar, app, ephemeral), or one
//! ephemeral container alone — and what a failed check says.
use std::collections::BTreeSet;

use crate::proto::v1::{
    Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, seccomp_profile,
    volume,
};

/// The pod-level fields (none for an ephemeral container checked alone)
/// and every container the checks visit.
pub(super) struct Subject<'a> {
    pod: Option<&'a PodSpec>,
    containers: Vec<&'a Container>,
}

impl<'a> Subject<'a> {
    /// A whole pod: init containers (sidecars among them), app containers,
    /// then ephemeral containers.
    pub(super) fn pod(pod: &'a PodSpec) -> Self {
        let containers = pod
            .init_containers
            .iter()
            .chain(&pod.containers)
            .chain(&pod.ephemeral_containers)
            .collect();
        Subject {
            pod: Some(pod),
            containers,
        }
    }

    /// One ephemeral container, without its pod's fields.
    pub(super) fn container(container: &'a Container) -> Self {
        Subject {
            pod: None,
            containers: vec![container],
        }
    }

    /// The pod's own fields, when the subject is a pod.
    pub(super) fn pod_spec(&self) -> Option<&'a PodSpec> {
        self.pod
    }

    /// The pod-level security context, when there is one.
    pub(super) fn pod_security(&self) -> Option<&'a PodSecurityContext> {
        self.pod.and_then(|p| p.security_context.as_ref())
    }

    /// Every container, in visiting order.
    pub(super) fn containers(&self) -> impl Iterator<Item = &'a Container> + '_ {
        self.containers.iter().copied()
    }
}

/// A container's security context, when set.
pub(super) fn security(c: &Container) -> Option<&SecurityContext> {
    c.security_context.as_ref()
}

/// The host paths a container names itself: its mounts' (a mount of a
/// volume names none), then its devices'.
pub(super) fn host_paths(c: &Container) -> impl Iterator<Item = &str> {
    c.mounts
        .iter()
        .map(|m| m.host_path.as_str())
        .filter(|p| !p.is_empty())
        .chain(c.devices.iter().map(|d| d.host_path.as_str()))
}

/// The pod's hostPath volumes whose path `refused` holds refused (in
/// volume order), and those paths (sorted, each once); None when there is
/// none. Every hostPath volume counts, mounted or not: its type check alone
/// may create the path on the node.
pub(super) fn refused_host_path_volumes<'a>(
    s: &Subject<'a>,
    refused: impl Fn(&str) -> bool,
) -> Option<(Vec<&'a str>, BTreeSet<&'a str>)> {
    let mut bad = Vec::new();
    let mut paths = BTreeSet::new();
    for v in s.pod_spec().map_or(&[][..], |p| p.volumes.as_slice()) {
        if let Some(volume::Source::HostPath(h)) = &v.source
            && refused(&h.path)
        {
            bad.push(v.name.as_str());
            paths.insert(h.path.as_str());
        }
    }
    (!bad.is_empty()).then_some((bad, paths))
}

/// The containers asking for host paths that `refused` holds refused (in
/// container order), and those paths (sorted, each once); None when no
/// container asks for one.
pub(super) fn refused_host_paths<'a>(
    s: &Subject<'a>,
    refused: impl Fn(&str) -> bool,
) -> Option<(Vec<&'a str>, BTreeSet<&'a str>)> {
    let mut bad = Vec::new();
    let mut paths = BTreeSet::new();
    for c in s.containers() {
        let found: Vec<&str> = host_paths(c).filter(|p| refused(p)).collect();
        if !found.is_empty() {
            bad.push(c.name.as_str());
            paths.extend(found);
        }
    }
    (!bad.is_empty()).then_some((bad, paths))
}

/// A seccomp profile's type when one is set; an absent profile and
/// `TYPE_UNSPECIFIED` both mean unset, as the runtime reads them.
pub(super) fn seccomp_type(p: Option<&SeccompProfile>) -> Option<seccomp_profile::Type> {
    match p.map(SeccompProfile::r#type) {
        None | Some(seccomp_profile::Type::Unspecified) => None,
        Some(t) => Some(t),
    }
}

/// A seccomp profile type as Kubernetes spells it.
pub(super) fn seccomp_name(t: seccomp_profile::Type) -> &'static str {
    match t {
        seccomp_profile::Type::Unspecified => "",
        seccomp_profile::Type::RuntimeDefault => "RuntimeDefault",
        seccomp_profile::Type::Unconfined => "Unconfined",
        seccomp_profile::Type::Localhost => "Localhost",
    }
}

/// One failed check: its Kubernetes reason (`privileged`, `host
/// namespaces`, …) and what in the spec failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Violation {
    pub(super) reason: &'static str,
    pub(super) detail: String,
}

impl Violation {
    pub(super) fn new(reason: &'static str, detail: String) -> Option<Self> {
        Some(Violation { reason, detail })
    }
}
