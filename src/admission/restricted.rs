//! The restricted level's own checks, each named and worded as Kubernetes'
//! `k8s.io/pod-security-admission` check of the same id (policy version
//! "latest"), on podstart's fields. They run after the baseline checks
//! restricted keeps; `capabilities_restricted`, `restrictedVolumes` and
//! `seccompProfile_restricted` replace their baseline counterparts.
use std::collections::BTreeSet;

use super::Allowances;
use super::subject::{
    Subject, Violation, refused_host_path_volumes, refused_host_paths, seccomp_name, seccomp_type,
    security,
};
use super::words::{self, containers, joined, listed, plural, quoted};
use crate::proto::v1::seccomp_profile;
use crate::spec::container::cri_capability;

/// The one capability a container may add at restricted.
pub(super) const NET_BIND_SERVICE: &str = "NET_BIND_SERVICE";

/// `allowPrivilegeEscalation`: every container sets
/// `allowPrivilegeEscalation=false`.
pub(super) fn allow_privilege_escalation(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let bad: Vec<&str> = s
        .containers()
        .filter(|c| security(c).and_then(|sc| sc.allow_privilege_escalation) != Some(false))
        .map(|c| c.name.as_str())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers(&bad)
        ),
    )
}

/// `capabilities_restricted`: every container drops `ALL` and adds at most
/// `NET_BIND_SERVICE`, names read as the runtime reads them.
pub(super) fn capabilities(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut keeps = Vec::new();
    let mut adds = Vec::new();
    let mut added = BTreeSet::new();
    for c in s.containers() {
        let caps = security(c).and_then(|sc| sc.capabilities.as_ref());
        let drop = caps.map_or(&[][..], |caps| &caps.drop[..]);
        if !drop.iter().any(|d| cri_capability(d) == "ALL") {
            keeps.push(c.name.as_str());
        }
        let forbidden: Vec<&str> = caps
            .map_or(&[][..], |caps| &caps.add[..])
            .iter()
            .filter(|a| cri_capability(a) != NET_BIND_SERVICE)
            .map(String::as_str)
            .collect();
        if !forbidden.is_empty() {
            adds.push(c.name.as_str());
            added.extend(forbidden);
        }
    }
    let mut details = Vec::new();
    if !keeps.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers(&keeps)
        ));
    }
    if !adds.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adds),
            joined(&quoted(added), "capabilities"),
        ));
    }
    if details.is_empty() {
        return None;
    }
    Violation::new("unrestricted capabilities", details.join("; "))
}

/// `restrictedVolumes`: no host path at all (a hostPath volume, a mount's
/// or a device's); emptyDir, config (configMap, secret, projected) and
/// downwardAPI volumes are allowed, as in Kubernetes.
pub(super) fn volumes(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut parts = Vec::new();
    if let Some((bad, paths)) = refused_host_path_volumes(s, |_| true) {
        parts.push(format!(
            "{} {} restricted volume type \"hostPath\": {}",
            words::volumes(&bad),
            plural(bad.len(), "uses", "use"),
            listed("host path", "host paths", &quoted(paths)),
        ));
    }
    if let Some((bad, paths)) = refused_host_paths(s, |_| true) {
        parts.push(format!(
            "{} {} restricted volume type \"hostPath\": {}",
            containers(&bad),
            plural(bad.len(), "uses", "use"),
            listed("host path", "host paths", &quoted(paths)),
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Violation::new("restricted volume types", parts.join("; "))
}

/// `runAsNonRoot`: `runAsNonRoot=true` on the pod or on every container,
/// and `false` nowhere.
pub(super) fn run_as_non_root(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let pod = s.pod_security().and_then(|sc| sc.run_as_non_root);
    let mut setters = Vec::new();
    if pod == Some(false) {
        setters.push("pod".to_string());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in s.containers() {
        match security(c).and_then(|sc| sc.run_as_non_root) {
            Some(false) => explicit.push(c.name.as_str()),
            Some(true) => {}
            None if pod == Some(true) => {}
            None => implicit.push(c.name.as_str()),
        }
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    if !setters.is_empty() {
        return Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    Violation::new(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers(&implicit)
        ),
    )
}

/// `runAsUser`: neither the pod nor a container sets `runAsUser=0`.
pub(super) fn run_as_user(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut setters = Vec::new();
    if s.pod_security().and_then(|sc| sc.run_as_user) == Some(0) {
        setters.push("pod".to_string());
    }
    let bad: Vec<&str> = s
        .containers()
        .filter(|c| security(c).and_then(|sc| sc.run_as_user) == Some(0))
        .map(|c| c.name.as_str())
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

/// `seccompProfile_restricted`: seccomp `RuntimeDefault` or `Localhost` on
/// the pod or on every container, and nothing else anywhere.
pub(super) fn seccomp(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let confined = |t: Option<seccomp_profile::Type>| {
        matches!(
            t,
            Some(seccomp_profile::Type::RuntimeDefault | seccomp_profile::Type::Localhost)
        )
    };
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod = s
        .pod_security()
        .and_then(|sc| seccomp_type(sc.seccomp_profile.as_ref()));
    if pod.is_some() && !confined(pod) {
        setters.push("pod".to_string());
        values.extend(pod.map(seccomp_name));
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in s.containers() {
        let own = security(c).and_then(|sc| seccomp_type(sc.seccomp_profile.as_ref()));
        if own.is_some() && !confined(own) {
            explicit.push(c.name.as_str());
            values.extend(own.map(seccomp_name));
        } else if own.is_none() && !confined(pod) {
            implicit.push(c.name.as_str());
        }
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    if !setters.is_empty() {
        return Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                joined(&quoted(values), "types"),
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    Violation::new(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers(&implicit)
        ),
    )
}
