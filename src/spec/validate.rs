//! Request validation: the subset of Kubernetes' pod validation that matters
//! before anything reaches the runtime. Each failure names the field by its
//! path in the request (`pod.containers[1].image`) and the rule in words.

use crate::proto::v1::{
    Container, ContainerRestartPolicy, Handler, MountPropagation, PodRef, PodSpec, Probe,
    StartContainerRequest, StartPodRequest, handler::Action,
};
use crate::spec::image;
use std::collections::HashSet;

/// A request that breaks a validation rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct InvalidSpec {
    /// Path of the offending field, e.g. `pod.containers[1].image`.
    pub field: String,
    /// The rule it breaks, in words.
    pub rule: String,
}

fn invalid(field: impl Into<String>, rule: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        rule: rule.into(),
    }
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const UID_MAX: usize = 128;
const LABEL_RULE: &str = "must be a DNS-1123 label: at most 63 characters, lower-case \
    letters, digits and '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "must be a DNS-1123 subdomain: at most 253 characters, \
    dot-separated lower-case labels of letters, digits and '-', each starting and ending \
    with a letter or digit";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            b.len() <= DNS1123_LABEL_MAX
                && alnum(f)
                && alnum(l)
                && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// Dot-separated DNS-1123 labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

/// A port name (`IANA_SVC_NAME`): at most 15 characters, lower-case letters,
/// digits and '-', at least one letter, no leading, trailing or double '-'.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Validates a whole StartPod request.
pub fn validate_start_pod(req: &StartPodRequest) -> Result<(), InvalidSpec> {
    let pod = req.pod.as_ref().ok_or_else(|| invalid("pod", "required"))?;
    validate_pod(pod)
}

// Long: one rule per field, in the order of the message's fields.
fn validate_pod(pod: &PodSpec) -> Result<(), InvalidSpec> {
    let meta = pod
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("pod.metadata", "required"))?;
    if meta.name.is_empty() {
        return Err(invalid("pod.metadata.name", "required"));
    }
    if !is_dns1123_subdomain(&meta.name) {
        return Err(invalid("pod.metadata.name", SUBDOMAIN_RULE));
    }
    if meta.namespace.is_empty() {
        return Err(invalid("pod.metadata.namespace", "required"));
    }
    if !is_dns1123_label(&meta.namespace) {
        return Err(invalid("pod.metadata.namespace", LABEL_RULE));
    }
    validate_uid("pod.metadata.uid", &meta.uid)?;

    if !pod.hostname.is_empty() && !is_dns1123_label(&pod.hostname) {
        return Err(invalid("pod.hostname", LABEL_RULE));
    }
    if !pod.subdomain.is_empty() && !is_dns1123_label(&pod.subdomain) {
        return Err(invalid("pod.subdomain", LABEL_RULE));
    }
    if pod.termination_grace_period_seconds.is_some_and(|s| s < 0) {
        return Err(invalid(
            "pod.termination_grace_period_seconds",
            "must be >= 0",
        ));
    }
    if pod.sysctls.keys().any(|k| k.is_empty()) {
        return Err(invalid("pod.sysctls", "names must not be empty"));
    }
    if pod.containers.is_empty() {
        return Err(invalid(
            "pod.containers",
            "at least one container is required",
        ));
    }

    let mut names = HashSet::new();
    let lists = [
        ("init_containers", &pod.init_containers),
        ("containers", &pod.containers),
        ("ephemeral_containers", &pod.ephemeral_containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let path = format!("pod.{list}[{i}]");
            match list {
                "ephemeral_containers" => validate_ephemeral(&path, c)?,
                _ => validate_container(&path, c)?,
            }
            if list == "containers" && c.restart_policy() == ContainerRestartPolicy::Always {
                return Err(invalid(
                    format!("{path}.restart_policy"),
                    "ALWAYS is only allowed on init containers",
                ));
            }
            if list == "init_containers"
                && c.restart_policy() != ContainerRestartPolicy::Always
                && c.startup_probe.is_some()
            {
                return Err(invalid(
                    format!("{path}.startup_probe"),
                    "only allowed on init containers with restart_policy ALWAYS (sidecars)",
                ));
            }
            if list != "ephemeral_containers" && !c.target_container_name.is_empty() {
                return Err(invalid(
                    format!("{path}.target_container_name"),
                    "only allowed on ephemeral containers",
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("duplicate name {:?}", c.name),
                ));
            }
        }
    }

    for (i, c) in pod.ephemeral_containers.iter().enumerate() {
        let target = &c.target_container_name;
        if !target.is_empty()
            && !pod
                .init_containers
                .iter()
                .chain(&pod.containers)
                .any(|o| &o.name == target)
        {
            return Err(invalid(
                format!("pod.ephemeral_containers[{i}].target_container_name"),
                format!("must name an app or init container; {target:?} is neither"),
            ));
        }
    }
    Ok(())
}

/// Validates a StartContainer request: the pod uid, and the container as an
/// ephemeral one. Its name and target are checked against the running pod
/// by the start flow.
pub fn validate_start_container(req: &StartContainerRequest) -> Result<(), InvalidSpec> {
    validate_uid("pod_uid", &req.pod_uid)?;
    let c = req
        .container
        .as_ref()
        .ok_or_else(|| invalid("container", "required"))?;
    validate_ephemeral("container", c)
}

/// A pod reference (StopPod, GetPod) names the pod by its uid, or by both
/// namespace and name.
pub fn validate_pod_ref(pod: &PodRef) -> Result<(), InvalidSpec> {
    if pod.uid.is_empty() && (pod.namespace.is_empty() || pod.name.is_empty()) {
        return Err(invalid("pod", "give the uid, or both namespace and name"));
    }
    Ok(())
}

fn validate_uid(path: &str, uid: &str) -> Result<(), InvalidSpec> {
    if uid.is_empty() {
        return Err(invalid(path, "required"));
    }
    if uid.chars().count() > UID_MAX {
        return Err(invalid(path, "must be at most 128 characters"));
    }
    if uid.contains('/') {
        return Err(invalid(path, "must not contain '/'"));
    }
    if uid.chars().any(char::is_whitespace) {
        return Err(invalid(path, "must not contain whitespace"));
    }
    Ok(())
}

/// Validates an ephemeral container: [`validate_container`] plus what
/// Kubernetes forbids on ephemeral containers (ports, lifecycle, resources,
/// startup probe, restart policy). The target name is checked against the
/// pod by [`validate_start_pod`]; for StartContainer the caller checks it
/// against the running pod.
pub fn validate_ephemeral(path: &str, c: &Container) -> Result<(), InvalidSpec> {
    const NOT_ALLOWED: &str = "not allowed on ephemeral containers";
    if !c.ports.is_empty() {
        return Err(invalid(format!("{path}.ports"), NOT_ALLOWED));
    }
    if c.lifecycle.is_some() {
        return Err(invalid(format!("{path}.lifecycle"), NOT_ALLOWED));
    }
    if c.resources
        .as_ref()
        .is_some_and(|r| *r != Default::default())
    {
        return Err(invalid(format!("{path}.resources"), NOT_ALLOWED));
    }
    if c.startup_probe.is_some() {
        return Err(invalid(format!("{path}.startup_probe"), NOT_ALLOWED));
    }
    if c.restart_policy() != ContainerRestartPolicy::Unspecified {
        return Err(invalid(format!("{path}.restart_policy"), NOT_ALLOWED));
    }
    validate_container(path, c)
}

/// Validates one container, `path` naming it (`pod.containers[1]`, or
/// `container` for StartContainer). Rules that depend on the container's
/// list (restart policy, uniqueness, target) are checked by
/// [`validate_start_pod`] and [`validate_ephemeral`].
// Long: one rule per field, in the order of the message's fields.
pub fn validate_container(path: &str, c: &Container) -> Result<(), InvalidSpec> {
    let field = |f: &str| format!("{path}.{f}");

    if c.name.is_empty() {
        return Err(invalid(field("name"), "required"));
    }
    if !is_dns1123_label(&c.name) {
        return Err(invalid(field("name"), LABEL_RULE));
    }
    if c.image.is_empty() {
        return Err(invalid(field("image"), "required"));
    }
    if let Err(e) = image::parse_image(&c.image) {
        return Err(invalid(
            field("image"),
            format!("invalid image reference: {}", e.reason),
        ));
    }

    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    for (i, m) in c.mounts.iter().enumerate() {
        let p = field(&format!("mounts[{i}]"));
        check_path(&format!("{p}.container_path"), &m.container_path)?;
        check_path(&format!("{p}.host_path"), &m.host_path)?;
        if m.propagation() == MountPropagation::Bidirectional && !privileged {
            return Err(invalid(
                format!("{p}.propagation"),
                "BIDIRECTIONAL is only allowed on privileged containers",
            ));
        }
    }
    for (i, d) in c.devices.iter().enumerate() {
        let p = field(&format!("devices[{i}]"));
        check_path(&format!("{p}.container_path"), &d.container_path)?;
        check_path(&format!("{p}.host_path"), &d.host_path)?;
        if !d
            .permissions
            .chars()
            .all(|ch| matches!(ch, 'r' | 'w' | 'm'))
        {
            return Err(invalid(
                format!("{p}.permissions"),
                "must only contain 'r', 'w' and 'm'",
            ));
        }
    }

    let mut port_names = HashSet::new();
    for (i, p) in c.ports.iter().enumerate() {
        let pp = field(&format!("ports[{i}]"));
        if !(1..=65535).contains(&p.container_port) {
            return Err(invalid(
                format!("{pp}.container_port"),
                "must be between 1 and 65535",
            ));
        }
        if !(0..=65535).contains(&p.host_port) {
            return Err(invalid(
                format!("{pp}.host_port"),
                "must be between 0 and 65535",
            ));
        }
        if !p.name.is_empty() {
            if !is_port_name(&p.name) {
                return Err(invalid(
                    format!("{pp}.name"),
                    "must be at most 15 lower-case letters, digits and '-', with at least \
                     one letter and no leading, trailing or double '-'",
                ));
            }
            if !port_names.insert(p.name.as_str()) {
                return Err(invalid(
                    format!("{pp}.name"),
                    format!("duplicate port name {:?}", p.name),
                ));
            }
        }
    }

    for (i, e) in c.env.iter().enumerate() {
        let p = field(&format!("env[{i}].name"));
        if e.name.is_empty() {
            return Err(invalid(p, "required"));
        }
        if e.name.contains('=') {
            return Err(invalid(p, "must not contain '='"));
        }
    }

    if let Some(l) = c.lifecycle.as_ref() {
        if let Some(h) = l.post_start.as_ref() {
            validate_hook(&field("lifecycle.post_start"), h, c)?;
        }
        if let Some(h) = l.pre_stop.as_ref() {
            validate_hook(&field("lifecycle.pre_stop"), h, c)?;
        }
    }

    if let Some(p) = c.startup_probe.as_ref() {
        validate_probe(&field("startup_probe"), p, c)?;
    }

    if let Some(r) = c.resources.as_ref() {
        let rp = field("resources");
        let values = [
            ("cpu_request_millis", r.cpu_request_millis),
            ("cpu_limit_millis", r.cpu_limit_millis),
            ("memory_request_bytes", r.memory_request_bytes),
            ("memory_limit_bytes", r.memory_limit_bytes),
        ];
        for (name, v) in values {
            if v < 0 {
                return Err(invalid(format!("{rp}.{name}"), "must be >= 0"));
            }
        }
        if r.cpu_request_millis > 0
            && r.cpu_limit_millis > 0
            && r.cpu_request_millis > r.cpu_limit_millis
        {
            return Err(invalid(
                format!("{rp}.cpu_request_millis"),
                "must be <= cpu_limit_millis",
            ));
        }
        if r.memory_request_bytes > 0
            && r.memory_limit_bytes > 0
            && r.memory_request_bytes > r.memory_limit_bytes
        {
            return Err(invalid(
                format!("{rp}.memory_request_bytes"),
                "must be <= memory_limit_bytes",
            ));
        }
    }
    Ok(())
}

/// An absolute path without a `..` component.
fn check_path(path: &str, value: &str) -> Result<(), InvalidSpec> {
    if !value.starts_with('/') {
        return Err(invalid(path, "must be an absolute path"));
    }
    if value.split('/').any(|part| part == "..") {
        return Err(invalid(path, "must not contain a '..' component"));
    }
    Ok(())
}

/// A probe: exec, HTTP GET or TCP (not sleep), non-negative timing, and a
/// success threshold of 1 (Kubernetes' rule for startup probes).
fn validate_probe(path: &str, p: &Probe, c: &Container) -> Result<(), InvalidSpec> {
    let timings = [
        ("initial_delay_seconds", p.initial_delay_seconds),
        ("period_seconds", p.period_seconds),
        ("timeout_seconds", p.timeout_seconds),
        ("failure_threshold", p.failure_threshold),
    ];
    for (name, v) in timings {
        if v < 0 {
            return Err(invalid(format!("{path}.{name}"), "must be >= 0"));
        }
    }
    if p.success_threshold > 1 || p.success_threshold < 0 {
        return Err(invalid(
            format!("{path}.success_threshold"),
            "must be 1 for a startup probe",
        ));
    }
    let h = p
        .handler
        .as_ref()
        .ok_or_else(|| invalid(format!("{path}.handler"), "required"))?;
    let hp = format!("{path}.handler");
    match h.action.as_ref() {
        None => Err(invalid(
            hp,
            "must specify one of exec, http_get or tcp_socket",
        )),
        Some(Action::Sleep(_)) => Err(invalid(format!("{hp}.sleep"), "not supported in a probe")),
        Some(Action::TcpSocket(t)) => check_port(&format!("{hp}.tcp_socket.port"), &t.port, c),
        Some(_) => validate_hook(&hp, h, c),
    }
}

/// A port given by number (1–65535) or by the name of a container port.
fn check_port(path: &str, port: &str, c: &Container) -> Result<(), InvalidSpec> {
    if port.is_empty() {
        return Err(invalid(path, "required"));
    }
    let numeric_ok = port.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
    let named_ok = c
        .ports
        .iter()
        .any(|cp| !cp.name.is_empty() && cp.name == port);
    if numeric_ok || named_ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "must be a number between 1 and 65535 or the name of a container port; \
                 {port:?} is neither"
            ),
        ))
    }
}

fn validate_hook(path: &str, h: &Handler, c: &Container) -> Result<(), InvalidSpec> {
    match h.action.as_ref() {
        None => Err(invalid(path, "must specify one of exec, http_get or sleep")),
        Some(Action::TcpSocket(_)) => Err(invalid(
            format!("{path}.tcp_socket"),
            "not supported as a lifecycle hook",
        )),
        Some(Action::Exec(e)) => {
            if e.command.is_empty() {
                Err(invalid(format!("{path}.exec.command"), "must not be empty"))
            } else {
                Ok(())
            }
        }
        Some(Action::Sleep(s)) => {
            if s.seconds < 0 {
                Err(invalid(format!("{path}.sleep.seconds"), "must be >= 0"))
            } else {
                Ok(())
            }
        }
        Some(Action::HttpGet(g)) => {
            if !(g.scheme.is_empty()
                || g.scheme.eq_ignore_ascii_case("http")
                || g.scheme.eq_ignore_ascii_case("https"))
            {
                return Err(invalid(
                    format!("{path}.http_get.scheme"),
                    format!("must be HTTP or HTTPS; got {:?}", g.scheme),
                ));
            }
            check_port(&format!("{path}.http_get.port"), &g.port, c)
        }
    }
}

#[cfg(test)]
mod tests;
