//! The CRI `ContainerConfig` for one container of a pod (the kubelet's
//! `generateContainerConfig` with `generateLinuxContainerConfig`): expanded
//! command, args and env, mounts, devices, labels and annotations, log path,
//! Linux resources (CPU shares and CFS quota, memory limit, OOM score by QoS
//! class) and the effective security context.

use crate::node::{Node, mem_total as parse_mem_total};
use crate::proto::v1::{
    AppArmorProfile, Container, ContainerKind, MountPropagation, PodSpec, SeccompProfile,
    app_armor_profile, seccomp_profile, volume,
};
use crate::spec::fields::{self, FieldContext};
use crate::spec::{expand, labels, resources, sandbox};
use k8s_cri::v1 as cri;
pub use resources::{
    CPU_PERIOD_US, MAX_SHARES, MIN_QUOTA_US, MIN_SHARES, milli_cpu_to_quota, milli_cpu_to_shares,
};
use std::sync::OnceLock;

/// OOM score adjustment of Guaranteed pods (what the kubelet asks for).
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// OOM score adjustment of BestEffort pods.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
/// Memory capacity assumed when /proc/meminfo cannot be read: 16 GiB.
pub use crate::node::FALLBACK_MEMORY_BYTES;
/// Device permissions when none are given.
pub const DEFAULT_DEVICE_PERMISSIONS: &str = "rwm";

/// Everything [`container_config`] needs about one container start.
#[derive(Debug, Clone, Copy)]
pub struct ContainerContext<'a> {
    /// The pod the container belongs to.
    pub pod: &'a PodSpec,
    /// The container, as specified.
    pub container: &'a Container,
    /// Which list the container comes from (init containers with restart
    /// policy ALWAYS are sidecars).
    pub kind: ContainerKind,
    /// Restart count; also the CRI attempt and the log file number.
    pub restart_count: u32,
    /// The image to run: the reference or id the image step resolved.
    pub image: &'a str,
    /// For an ephemeral container with a target: the target's container id.
    pub target_container_id: Option<&'a str>,
    /// The host path each of the container's mounts binds, in order (a
    /// volume's directory or subPath, resolved on the disk); a mount
    /// without an entry binds its own `host_path`.
    pub mount_sources: &'a [String],
    /// The node (its name, IPs and allocatable amounts for env vars read
    /// from the pod's fields, its memory for OOM scores, the OOM floor).
    pub node: &'a Node,
    /// The sandbox's IPs (`status.podIPs`).
    pub pod_ips: &'a [String],
}

/// The container's log path, relative to the sandbox's log directory:
/// `<name>/<restart_count>.log`.
pub fn log_path(name: &str, restart_count: u32) -> String {
    format!("{name}/{restart_count}.log")
}

/// The CRI config for the container in `ctx`.
pub fn container_config(ctx: &ContainerContext<'_>) -> cri::ContainerConfig {
    let c = ctx.container;
    let meta = ctx.pod.metadata.clone().unwrap_or_default();
    let fields = FieldContext {
        pod: ctx.pod,
        container: c,
        node: ctx.node,
        pod_ips: ctx.pod_ips,
    };
    let env = expand::container_env(c, |src| fields::resolve(&fields, src));
    let (command, args) = expand::expand_command_and_args(c, &env);

    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt: ctx.restart_count,
        }),
        image: Some(cri::ImageSpec {
            image: ctx.image.to_string(),
            user_specified_image: c.image.clone(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone(),
        envs: env
            .into_iter()
            .map(|(key, value)| cri::KeyValue { key, value })
            .collect(),
        mounts: c
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: ctx
                    .mount_sources
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| m.host_path.clone()),
                readonly: m.read_only || files_volume(ctx.pod, &m.volume_name),
                selinux_relabel: m.selinux_relabel,
                propagation: cri_propagation(m.propagation()),
                ..Default::default()
            })
            .collect(),
        devices: c
            .devices
            .iter()
            .map(|d| cri::Device {
                container_path: d.container_path.clone(),
                host_path: d.host_path.clone(),
                permissions: if d.permissions.is_empty() {
                    DEFAULT_DEVICE_PERMISSIONS.to_string()
                } else {
                    d.permissions.clone()
                },
            })
            .collect(),
        labels: labels::container_labels(&meta, &c.name, ctx.kind),
        annotations: labels::container_annotations(ctx.pod, c, ctx.restart_count),
        log_path: log_path(&c.name, ctx.restart_count),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        tty: c.tty,
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(ctx.pod, c, ctx.kind, ctx.node)),
            security_context: Some(security_context(ctx)),
        }),
        ..Default::default()
    }
}

/// Whether `name` is a config or downward API volume of the pod: mounted
/// read-only whatever the mount says, as the kubelet mounts them.
pub fn files_volume(pod: &PodSpec, name: &str) -> bool {
    !name.is_empty()
        && pod.volumes.iter().any(|v| {
            v.name == name
                && matches!(
                    v.source,
                    Some(volume::Source::Config(_) | volume::Source::DownwardApi(_))
                )
        })
}

fn cri_propagation(p: MountPropagation) -> i32 {
    let m = match p {
        MountPropagation::HostToContainer => cri::MountPropagation::PropagationHostToContainer,
        MountPropagation::Bidirectional => cri::MountPropagation::PropagationBidirectional,
        MountPropagation::Private | MountPropagation::Unspecified => {
            cri::MountPropagation::PropagationPrivate
        }
    };
    m as i32
}

// ---------------------------------------------------------------- resources

/// The node's memory capacity in bytes, from /proc/meminfo (read once);
/// [`FALLBACK_MEMORY_BYTES`] when it cannot be read.
pub fn node_memory_bytes() -> i64 {
    static CAPACITY: OnceLock<i64> = OnceLock::new();
    *CAPACITY.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_mem_total(&s))
            .unwrap_or(FALLBACK_MEMORY_BYTES)
    })
}

/// A pod's Kubernetes QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Every container has CPU and memory limits equal to its requests.
    Guaranteed,
    /// Anything between.
    Burstable,
    /// No container requests or limits anything.
    BestEffort,
}

/// A container's requests with Kubernetes' defaulting applied: an unset
/// (zero) request takes the limit.
fn effective_requests(c: &Container) -> (i64, i64) {
    let r = c.resources.unwrap_or_default();
    let cpu = if r.cpu_request_millis > 0 {
        r.cpu_request_millis
    } else {
        r.cpu_limit_millis.max(0)
    };
    let mem = if r.memory_request_bytes > 0 {
        r.memory_request_bytes
    } else {
        r.memory_limit_bytes.max(0)
    };
    (cpu, mem)
}

/// The pod's QoS class over its init and app containers (`GetPodQOS`):
/// requests and limits are summed per resource; Guaranteed needs CPU and
/// memory limits on every container and summed requests equal to summed
/// limits.
///
/// A pod with pod-level resources takes its class from them alone
/// (KEP-2837): no requests or limits is BestEffort, CPU and memory limits
/// equal to the requests (an unset request defaults to the limit)
/// Guaranteed, anything else Burstable.
pub fn pod_qos(pod: &PodSpec) -> QosClass {
    if resources::pod_level_set(pod) {
        let r = pod.resources.unwrap_or_default();
        let req = resources::requests_of(Some(&r));
        return if r.cpu_limit_millis > 0
            && r.memory_limit_bytes > 0
            && req.cpu_millis == r.cpu_limit_millis
            && req.memory_bytes == r.memory_limit_bytes
        {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        };
    }
    let (mut req_cpu, mut req_mem, mut lim_cpu, mut lim_mem) = (0i64, 0i64, 0i64, 0i64);
    let mut all_limited = true;
    for c in pod.init_containers.iter().chain(&pod.containers) {
        let r = c.resources.unwrap_or_default();
        let (cpu, mem) = effective_requests(c);
        req_cpu = req_cpu.saturating_add(cpu);
        req_mem = req_mem.saturating_add(mem);
        lim_cpu = lim_cpu.saturating_add(r.cpu_limit_millis.max(0));
        lim_mem = lim_mem.saturating_add(r.memory_limit_bytes.max(0));
        if r.cpu_limit_millis <= 0 || r.memory_limit_bytes <= 0 {
            all_limited = false;
        }
    }
    if req_cpu == 0 && req_mem == 0 && lim_cpu == 0 && lim_mem == 0 {
        QosClass::BestEffort
    } else if all_limited && req_cpu == lim_cpu && req_mem == lim_mem {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The OOM score adjustment the kubelet would ask for
/// (`GetContainerOOMScoreAdjust`): Guaranteed -997, BestEffort 1000,
/// Burstable `1000 - 1000 * memRequest / capacity` clamped to [3, 999], a
/// sidecar never above the app container with the smallest memory request.
/// May be negative; [`linux_resources`] clamps it for this node.
pub fn oom_score_adj(
    pod: &PodSpec,
    c: &Container,
    kind: ContainerKind,
    memory_capacity: i64,
) -> i64 {
    match pod_qos(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = if memory_capacity > 0 {
        memory_capacity
    } else {
        FALLBACK_MEMORY_BYTES
    };
    let score = |mem_request: i64| {
        1000 - ((1000i128 * i128::from(mem_request)) / i128::from(capacity)) as i64
    };
    let mut adj = score(effective_requests(c).1);
    if kind == ContainerKind::Sidecar
        && let Some(min_app) = pod.containers.iter().map(|a| effective_requests(a).1).min()
    {
        adj = adj.min(score(min_app));
    }
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        1000 + GUARANTEED_OOM_SCORE_ADJ
    } else if adj >= BEST_EFFORT_OOM_SCORE_ADJ {
        BEST_EFFORT_OOM_SCORE_ADJ - 1
    } else {
        adj
    }
}

/// The container's Linux resources (`calculateLinuxResources`) on `node`:
/// the OOM score adjustment is the kubelet's, raised to the node's floor
/// when it has one (`--restrict-oom-score-adj`).
pub fn linux_resources(
    pod: &PodSpec,
    c: &Container,
    kind: ContainerKind,
    node: &Node,
) -> cri::LinuxContainerResources {
    let r = c.resources.unwrap_or_default();
    let (cpu_request, _) = effective_requests(c);
    let adj = oom_score_adj(pod, c, kind, node.capacity.memory_bytes);
    let mut out = cri::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        oom_score_adj: node.oom_score_adj_floor.map_or(adj, |floor| adj.max(floor)),
        ..Default::default()
    };
    // A container without a limit of its own is bounded by the pod's
    // (pod-level resources).
    let pod_level = pod.resources.unwrap_or_default();
    let or = |own: i64, pod: i64| if own > 0 { own } else { pod };
    let cpu_limit = or(r.cpu_limit_millis, pod_level.cpu_limit_millis);
    let memory_limit = or(r.memory_limit_bytes, pod_level.memory_limit_bytes);
    if cpu_limit > 0 {
        out.cpu_period = CPU_PERIOD_US;
        out.cpu_quota = milli_cpu_to_quota(cpu_limit, CPU_PERIOD_US);
    }
    if memory_limit > 0 {
        out.memory_limit_in_bytes = memory_limit;
    }
    out
}

// ---------------------------------------------------------------- security

/// A capability name as the CRI wants it: upper case, without the `CAP_`
/// prefix (containerd prepends `CAP_` to every name it is given).
pub fn cri_capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}

fn cri_seccomp(p: &SeccompProfile) -> Option<cri::SecurityProfile> {
    use cri::security_profile::ProfileType;
    let (profile_type, localhost_ref) = match p.r#type() {
        seccomp_profile::Type::Unspecified => return None,
        seccomp_profile::Type::RuntimeDefault => (ProfileType::RuntimeDefault, String::new()),
        seccomp_profile::Type::Unconfined => (ProfileType::Unconfined, String::new()),
        seccomp_profile::Type::Localhost => (ProfileType::Localhost, p.localhost_profile.clone()),
    };
    Some(cri::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    })
}

/// The AppArmor profile in both CRI fields: `apparmor` and the deprecated
/// `apparmor_profile` string containerd 1.6 reads (`runtime/default`,
/// `unconfined`, `localhost/NAME`), as the kubelet's `getAppArmorProfile`.
/// Unset: neither (the runtime's default).
fn cri_apparmor(p: &AppArmorProfile) -> Option<(cri::SecurityProfile, String)> {
    use cri::security_profile::ProfileType;
    let (profile_type, localhost_ref, deprecated) = match p.r#type() {
        app_armor_profile::Type::Unspecified => return None,
        app_armor_profile::Type::RuntimeDefault => (
            ProfileType::RuntimeDefault,
            String::new(),
            "runtime/default".to_string(),
        ),
        app_armor_profile::Type::Unconfined => (
            ProfileType::Unconfined,
            String::new(),
            "unconfined".to_string(),
        ),
        app_armor_profile::Type::Localhost => (
            ProfileType::Localhost,
            p.localhost_profile.clone(),
            format!("localhost/{}", p.localhost_profile),
        ),
    };
    Some((
        cri::SecurityProfile {
            profile_type: profile_type as i32,
            localhost_ref,
        },
        deprecated,
    ))
}

/// The effective security context (`determineEffectiveSecurityContext`):
/// container settings over pod settings.
// Deprecated: `apparmor_profile`, still set for containerd 1.6, which reads
// only it.
#[allow(deprecated)]
fn security_context(ctx: &ContainerContext<'_>) -> cri::LinuxContainerSecurityContext {
    let pod = ctx.pod;
    let psc = pod.security_context.clone().unwrap_or_default();
    let sc = ctx.container.security_context.clone().unwrap_or_default();

    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .and_then(cri_seccomp)
        .or_else(|| psc.seccomp_profile.as_ref().and_then(cri_seccomp))
        .unwrap_or(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        });

    let (apparmor, apparmor_profile) = sc
        .apparmor_profile
        .as_ref()
        .and_then(cri_apparmor)
        .or_else(|| psc.apparmor_profile.as_ref().and_then(cri_apparmor))
        .map_or((None, String::new()), |(p, s)| (Some(p), s));

    // Kubernetes' default PID namespace for containers is their own; host_pid
    // shares the node's; an ephemeral container with a target joins the
    // target's (only where it would otherwise have its own, as the kubelet).
    let mut namespace_options = cri::NamespaceOption {
        network: sandbox::node_or_pod(pod.host_network),
        ipc: sandbox::node_or_pod(pod.host_ipc),
        pid: if pod.host_pid {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Container as i32
        },
        ..Default::default()
    };
    if let Some(target) = ctx.target_container_id
        && namespace_options.pid == cri::NamespaceMode::Container as i32
    {
        namespace_options.pid = cri::NamespaceMode::Target as i32;
        namespace_options.target_id = target.to_string();
    }

    cri::LinuxContainerSecurityContext {
        capabilities: sc.capabilities.as_ref().map(|caps| cri::Capability {
            add_capabilities: caps.add.iter().map(|c| cri_capability(c)).collect(),
            drop_capabilities: caps.drop.iter().map(|c| cri_capability(c)).collect(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        namespace_options: Some(namespace_options),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|value| cri::Int64Value { value }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|value| cri::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: sandbox::supplemental_groups(pod),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        seccomp: Some(seccomp),
        apparmor,
        apparmor_profile,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
