//! The baseline level's checks, each named and worded as Kubernetes'
//! `k8s.io/pod-security-admission` check of the same id (policy version
//! "latest"), on podstart's fields. Every check here also runs at
//! restricted, save the three restricted replaces (`capabilities_baseline`,
//! `hostPathVolumes`, `seccompProfile_baseline`).
use std::collections::BTreeSet;

use super::Allowances;
use super::subject::{
    Subject, Violation, refused_host_path_volumes, refused_host_paths, seccomp_name, seccomp_type,
    security,
};
use super::words::{containers, joined, listed, plural, quoted, volumes};
use crate::proto::v1::{AppArmorProfile, Handler, app_armor_profile, handler, seccomp_profile};
use crate::spec::container::cri_capability;
use crate::spec::validate::clip;

/// Capabilities a container may add at baseline: the container runtimes'
/// default set (Kubernetes' `capabilities_baseline`).
pub(super) const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The safe sysctls of the latest policy version: namespaced, and isolated
/// from other pods on the node.
pub(super) const SAFE_SYSCTLS: [&str; 14] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

/// Characters of a sysctl name a message shows.
const SYSCTL_ECHO_MAX: usize = 64;

/// `capabilities_baseline`: `capabilities.add` only from
/// [`BASELINE_CAPABILITIES`], each compared as the runtime reads it (upper
/// case, without `CAP_`).
pub(super) fn capabilities(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in s.containers() {
        let added = security(c).and_then(|sc| sc.capabilities.as_ref());
        let mut refused = false;
        for cap in added.map_or(&[][..], |caps| &caps.add[..]) {
            if !BASELINE_CAPABILITIES.contains(&cri_capability(cap).as_str()) {
                refused = true;
                caps.insert(cap.as_str());
            }
        }
        if refused {
            bad.push(c.name.as_str());
        }
    }
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&bad),
            joined(&quoted(caps), "capabilities"),
        ),
    )
}

/// `hostNamespaces`: no host network, PID or IPC namespace.
pub(super) fn host_namespaces(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let pod = s.pod_spec()?;
    let shared: Vec<&str> = [
        (pod.host_network, "hostNetwork=true"),
        (pod.host_pid, "hostPID=true"),
        (pod.host_ipc, "hostIPC=true"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if shared.is_empty() {
        return None;
    }
    Violation::new("host namespaces", shared.join(", "))
}

/// `hostPathVolumes`: host paths (hostPath volumes, mounts and devices)
/// only under one of the grant's `host_path_prefixes`.
pub(super) fn host_path_volumes(s: &Subject<'_>, allow: &Allowances) -> Option<Violation> {
    let allowed = |path: &str| {
        allow
            .host_path_prefixes
            .iter()
            .any(|prefix| under_prefix(path, prefix))
    };
    let mut parts = Vec::new();
    if let Some((bad, paths)) = refused_host_path_volumes(s, |p| !allowed(p)) {
        parts.push(format!(
            "{} {} {}",
            volumes(&bad),
            plural(bad.len(), "uses", "use"),
            listed("host path", "host paths", &quoted(paths)),
        ));
    }
    if let Some((bad, paths)) = refused_host_paths(s, |p| !allowed(p)) {
        parts.push(format!(
            "{} {} {}",
            containers(&bad),
            plural(bad.len(), "uses", "use"),
            listed("host path", "host paths", &quoted(paths)),
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Violation::new("hostPath volumes", parts.join("; "))
}

/// Whether absolute `path` is `prefix` or below it, component by
/// component (`/var/log` holds `/var/log/pods`, not `/var/logs`); empty and
/// `.` components do not count. A prefix or path that is not absolute or
/// has a `..` component holds nothing.
pub(super) fn under_prefix(path: &str, prefix: &str) -> bool {
    match (components(path), components(prefix)) {
        (Some(path), Some(prefix)) => path.starts_with(&prefix),
        _ => false,
    }
}

fn components(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts)
}

/// `hostPorts`: host ports only within the grant's `host_ports` ranges.
pub(super) fn host_ports(s: &Subject<'_>, allow: &Allowances) -> Option<Violation> {
    let allowed = |port: i32| {
        u16::try_from(port)
            .is_ok_and(|p| allow.host_ports.iter().any(|r| r.first <= p && p <= r.last))
    };
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in s.containers() {
        let refused: Vec<i32> = c
            .ports
            .iter()
            .map(|p| p.host_port)
            .filter(|&p| p != 0 && !allowed(p))
            .collect();
        if !refused.is_empty() {
            bad.push(c.name.as_str());
            ports.extend(refused);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.iter().map(i32::to_string).collect();
    Violation::new(
        "hostPort",
        format!(
            "{} {} {}",
            containers(&bad),
            plural(bad.len(), "uses", "use"),
            listed("hostPort", "hostPorts", &ports),
        ),
    )
}

/// `hostProbesAndHostLifecycle`: the startup probe and the PostStart and
/// PreStop handlers leave `host` empty (podstart itself makes these HTTP
/// and TCP connections, from the node).
pub(super) fn host_probes(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut hosts = BTreeSet::new();
    for c in s.containers() {
        let probe = c.startup_probe.as_ref().and_then(|p| p.handler.as_ref());
        let hooks = c.lifecycle.as_ref();
        let found: Vec<&str> = [
            host(probe),
            host(hooks.and_then(|l| l.post_start.as_ref())),
            host(hooks.and_then(|l| l.pre_stop.as_ref())),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !found.is_empty() {
            bad.push(c.name.as_str());
            hosts.extend(found);
        }
    }
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "probe or lifecycle host",
        format!(
            "{} {} {}",
            containers(&bad),
            plural(bad.len(), "uses", "use"),
            listed(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                &quoted(hosts)
            ),
        ),
    )
}

/// The host an HTTP or TCP handler names, when it names one.
fn host(handler: Option<&Handler>) -> Option<&str> {
    match handler.and_then(|h| h.action.as_ref()) {
        Some(handler::Action::HttpGet(g)) if !g.host.is_empty() => Some(g.host.as_str()),
        Some(handler::Action::TcpSocket(t)) if !t.host.is_empty() => Some(t.host.as_str()),
        _ => None,
    }
}

/// `privileged`: no container sets `privileged=true`.
pub(super) fn privileged(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let bad: Vec<&str> = s
        .containers()
        .filter(|c| security(c).and_then(|sc| sc.privileged) == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers(&bad)
        ),
    )
}

/// Whether an AppArmor profile is set to `Unconfined` (every other type,
/// unset included, is allowed).
fn unconfined(p: Option<&AppArmorProfile>) -> bool {
    p.is_some_and(|p| p.r#type() == app_armor_profile::Type::Unconfined)
}

/// `appArmorProfile`: neither the pod nor a container sets AppArmor
/// `Unconfined`. (The older annotations reach podstart as the same field:
/// the client reads them into it.)
pub(super) fn apparmor(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let mut setters = Vec::new();
    if s.pod_security()
        .is_some_and(|sc| unconfined(sc.apparmor_profile.as_ref()))
    {
        setters.push("pod".to_string());
    }
    let bad: Vec<&str> = s
        .containers()
        .filter(|c| security(c).is_some_and(|sc| unconfined(sc.apparmor_profile.as_ref())))
        .map(|c| c.name.as_str())
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "forbidden AppArmor profile",
        format!(
            "{} must not set appArmorProfile.type to \"Unconfined\"",
            setters.join(" and ")
        ),
    )
}

/// `seccompProfile_baseline`: neither the pod nor a container sets
/// seccomp `Unconfined`.
pub(super) fn seccomp(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let unconfined = Some(seccomp_profile::Type::Unconfined);
    let mut setters = Vec::new();
    if s.pod_security()
        .is_some_and(|sc| seccomp_type(sc.seccomp_profile.as_ref()) == unconfined)
    {
        setters.push("pod".to_string());
    }
    let bad: Vec<&str> = s
        .containers()
        .filter(|c| {
            security(c).is_some_and(|sc| seccomp_type(sc.seccomp_profile.as_ref()) == unconfined)
        })
        .map(|c| c.name.as_str())
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    Violation::new(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to \"{}\"",
            setters.join(" and "),
            seccomp_name(seccomp_profile::Type::Unconfined),
        ),
    )
}

/// `sysctls`: only the [`SAFE_SYSCTLS`], by exact name.
pub(super) fn sysctls(s: &Subject<'_>, _: &Allowances) -> Option<Violation> {
    let pod = s.pod_spec()?;
    let forbidden: BTreeSet<&str> = pod
        .sysctls
        .keys()
        .map(String::as_str)
        .filter(|name| !SAFE_SYSCTLS.contains(name))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    let names: Vec<String> = forbidden
        .into_iter()
        .map(|n| clip(n, SYSCTL_ECHO_MAX))
        .collect();
    Violation::new("forbidden sysctls", joined(&names, "sysctls"))
}
