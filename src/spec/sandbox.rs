//! The CRI `PodSandboxConfig` for a pod (the kubelet's
//! `generatePodSandboxConfig`), the pod log directory, and the pod IPs read
//! back from `PodSandboxStatus` (`determinePodSandboxIPs`).

use crate::paths::{self, PathError};
use crate::proto::v1::{
    ContainerPort, PodMetadata, PodSpec, Protocol, SecurityContext as ContainerSecurityContext,
};
use crate::spec::{labels, resources};
use k8s_cri::v1 as cri;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Longest hostname the kernel accepts.
const MAX_HOSTNAME_LEN: usize = 63;

/// The pod's log directory: `<log_root>/<namespace>_<name>_<uid>`, one
/// directory inside the root (refused when the three do not make one plain
/// path component).
pub fn log_directory(log_root: &Path, meta: &PodMetadata) -> Result<PathBuf, PathError> {
    paths::under(log_root, &[&log_directory_name(meta)])
}

/// The name of the pod's log directory inside the log root:
/// `<namespace>_<name>_<uid>`.
pub fn log_directory_name(meta: &PodMetadata) -> String {
    format!("{}_{}_{}", meta.namespace, meta.name, meta.uid)
}

/// The sandbox config for `pod`, with `log_dir` (from [`log_directory`]) as
/// its log directory.
pub fn pod_sandbox_config(pod: &PodSpec, log_dir: &Path) -> cri::PodSandboxConfig {
    let meta = pod.metadata.clone().unwrap_or_default();
    let psc = pod.security_context.clone().unwrap_or_default();

    let port_mappings = pod
        .containers
        .iter()
        .flat_map(|c| port_mappings(&c.ports, pod.host_network))
        .collect();

    let namespace_options = cri::NamespaceOption {
        network: node_or_pod(pod.host_network),
        pid: node_or_pod(pod.host_pid),
        ipc: node_or_pod(pod.host_ipc),
        ..Default::default()
    };
    let any_privileged = pod
        .init_containers
        .iter()
        .chain(&pod.containers)
        .chain(&pod.ephemeral_containers)
        .any(|c| is_privileged(c.security_context.as_ref()));

    let security_context = cri::LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options),
        run_as_user: psc.run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: psc.run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: false,
        supplemental_groups: supplemental_groups(pod),
        privileged: any_privileged,
        // The kubelet always gives the sandbox (pause) RuntimeDefault.
        seccomp: Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        ..Default::default()
    };

    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            namespace: meta.namespace.clone(),
            attempt: meta.attempt,
        }),
        hostname: sandbox_hostname(pod),
        log_directory: log_dir.to_string_lossy().into_owned(),
        dns_config: pod.dns_config.as_ref().map(|d| cri::DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        port_mappings,
        labels: labels::pod_labels(&meta),
        annotations: meta.annotations.clone(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: pod.cgroup_parent.clone(),
            security_context: Some(security_context),
            sysctls: pod
                .sysctls
                .iter()
                .map(|(k, v)| (sysctl_dots(k), v.clone()))
                .collect::<HashMap<_, _>>(),
            resources: resources::sandbox_resources(pod),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The sandbox hostname: empty with host networking (containerd refuses a
/// hostname without a private UTS namespace); else `hostname` or the pod
/// name, cut to 63 bytes with trailing `-`/`.` trimmed, like the kubelet's
/// `truncatePodHostnameIfNeeded`.
pub fn sandbox_hostname(pod: &PodSpec) -> String {
    if pod.host_network {
        return String::new();
    }
    let name = if pod.hostname.is_empty() {
        pod.metadata
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or_default()
    } else {
        pod.hostname.as_str()
    };
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_string();
    }
    let mut cut = MAX_HOSTNAME_LEN;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name[..cut].trim_end_matches(['-', '.']).to_string()
}

/// The pod's supplemental groups, as the kubelet orders them: fs_group first,
/// then the pod's groups.
pub(crate) fn supplemental_groups(pod: &PodSpec) -> Vec<i64> {
    let Some(psc) = pod.security_context.as_ref() else {
        return Vec::new();
    };
    psc.fs_group
        .into_iter()
        .chain(psc.supplemental_groups.iter().copied())
        .collect()
}

pub(crate) fn node_or_pod(host: bool) -> i32 {
    if host {
        cri::NamespaceMode::Node as i32
    } else {
        cri::NamespaceMode::Pod as i32
    }
}

fn is_privileged(sc: Option<&ContainerSecurityContext>) -> bool {
    sc.and_then(|s| s.privileged).unwrap_or(false)
}

/// Kubernetes' protocol → CRI protocol; UNSPECIFIED is TCP.
pub(crate) fn cri_protocol(p: Protocol) -> i32 {
    match p {
        Protocol::Udp => cri::Protocol::Udp as i32,
        Protocol::Sctp => cri::Protocol::Sctp as i32,
        Protocol::Tcp | Protocol::Unspecified => cri::Protocol::Tcp as i32,
    }
}

/// One container's port mappings, as the kubelet's `MakePortMappings`: every
/// port, with a port defined twice (same name, or for unnamed ports the same
/// family/protocol/host IP/ports) kept once. With host networking a missing
/// host port defaults to the container port (Kubernetes' API defaulting).
fn port_mappings(ports: &[ContainerPort], host_network: bool) -> Vec<cri::PortMapping> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let host_port = if host_network && p.host_port == 0 {
            p.container_port
        } else {
            p.host_port
        };
        let key = if p.name.is_empty() {
            let family = match p.host_ip.parse::<IpAddr>() {
                _ if p.host_ip.is_empty() => "any",
                Ok(IpAddr::V6(_)) => "v6",
                _ => "v4",
            };
            format!(
                "{family}-{}-{}:{}:{host_port}",
                labels::protocol_name(p.protocol()),
                p.host_ip,
                p.container_port
            )
        } else {
            p.name.clone()
        };
        if !seen.insert(key) {
            continue;
        }
        out.push(cri::PortMapping {
            protocol: cri_protocol(p.protocol()),
            container_port: p.container_port,
            host_port,
            host_ip: p.host_ip.clone(),
        });
    }
    out
}

/// The kubelet's `convertSysctlVariableToDotsSeparator`: a name whose first
/// separator is `/` has its `/` and `.` swapped (`net/ipv4/ip_forward` →
/// `net.ipv4.ip_forward`, `a/b.c` → `a.b/c`).
pub fn sysctl_dots(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// The pod's IPs from its sandbox status: the primary IP then the additional
/// ones. Empty for host networking, without network status, or when any IP
/// does not parse (the kubelet distrusts the whole list then).
pub fn pod_ips(status: &cri::PodSandboxStatus, host_network: bool) -> Vec<String> {
    if host_network {
        return Vec::new();
    }
    let Some(net) = status.network.as_ref() else {
        return Vec::new();
    };
    let mut ips = Vec::with_capacity(1 + net.additional_ips.len());
    if !net.ip.is_empty() {
        ips.push(net.ip.as_str());
    }
    ips.extend(net.additional_ips.iter().map(|p| p.ip.as_str()));
    if ips.iter().any(|ip| ip.parse::<IpAddr>().is_err()) {
        return Vec::new();
    }
    ips.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests;
