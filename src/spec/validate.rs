//! Request validation: the subset of Kubernetes' pod validation that matters
//! before anything reaches the runtime, plus the bounds a node agent running
//! as root needs. Each failure names the field by its path in the request
//! (`pod.containers[1].image`) and the rule in words; input echoed in a
//! message is cut to [`ECHO_MAX`] characters.
//!
//! Every string has a length limit and a character rule, every number a
//! range, every list a count, every enum a known value. The limits are the
//! constants below; `proto/podstart/v1/podstart.proto` documents each with
//! the same number.

use crate::proto::v1::{
    AppArmorProfile, AppStartMode, Container, ContainerRestartPolicy, DnsConfig, FieldSource,
    Handler, HostPathType, ListPodsRequest, Mount, MountPropagation, PodMetadata, PodRef,
    PodSecurityContext, PodSpec, Probe, Protocol, PullPolicy, RegistryCredential, Resources,
    RestartPolicy, SeccompProfile, SecurityContext, StartContainerRequest, StartOptions,
    StartPodRequest, StopPodRequest, StorageMedium, TerminationMessagePolicy, Volume,
    WatchEventsRequest, app_armor_profile, field_source, handler::Action, seccomp_profile, volume,
};
use crate::spec::{expand, fields, image, resources};
use crate::volumes::downward;
use std::collections::{HashMap, HashSet};

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

// ---------------------------------------------------------------- limits
//
// Every limit on a request. The proto comments repeat these numbers; a
// change here changes them too.

/// A DNS-1123 label: pod namespace, container names, hostname, subdomain,
/// runtime handler (RFC 1123; `DNS1123LabelMaxLength` in
/// `k8s.io/apimachinery/pkg/util/validation`).
pub const DNS1123_LABEL_MAX: usize = 63;
/// A DNS-1123 subdomain: pod name, DNS search domains
/// (`DNS1123SubdomainMaxLength`).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// A pod uid: `[A-Za-z0-9._-]`, not `.` or `..`. Kubernetes uids are
/// 36-character UUIDs; podstart names a directory after the uid, so it must
/// be one safe path component.
pub const UID_MAX: usize = 128;
/// Paths (mounts, devices, working dir, termination message path, cgroup
/// parent, seccomp profile): Linux `PATH_MAX`.
pub const PATH_MAX: usize = 4096;
/// Other text: image references, env names, registry servers, HTTP hosts,
/// paths and header values, sysctl values, DNS options.
pub const TEXT_MAX: usize = 4096;
/// One env value, command or args element (also exec hook and probe
/// command elements), before and after `$(VAR)` expansion: Linux's
/// `MAX_ARG_STRLEN` (32 pages of 4 KiB), the most `execve` takes for one
/// string.
pub const ARG_STRLEN_MAX: usize = 128 * 1024;
/// A container's env + command + args after `$(VAR)` expansion, counted as
/// `execve` counts them (`NAME=value` and each element, each with its NUL):
/// half of Linux's default `ARG_MAX` (a quarter of the 8 MiB stack limit),
/// leaving room for what the runtime adds. Kubernetes sets no cap on
/// expansion (`third_party/forked/golang/expansion`); without one, a 6 KB
/// request expands to hundreds of megabytes.
pub const EXPANDED_TOTAL_MAX: usize = 1024 * 1024;
/// Containers in a pod, init + app + ephemeral. Kubernetes bounds a pod only
/// by the size of the stored object; podstart starts containers one CRI
/// call at a time, and a pod this large would hold the runtime for minutes.
pub const CONTAINERS_MAX: usize = 128;
/// Env vars in one container (the expanded size is bounded too).
pub const ENV_MAX: usize = 4096;
/// Elements of a command, of args, and of an exec hook or probe command.
pub const ARGS_MAX: usize = 4096;
/// Mounts in one container.
pub const MOUNTS_MAX: usize = 256;
/// Devices in one container.
pub const DEVICES_MAX: usize = 256;
/// Ports in one container.
pub const PORTS_MAX: usize = 256;
/// Headers of one HTTP GET hook or probe.
pub const HTTP_HEADERS_MAX: usize = 64;
/// Capabilities in each of `add` and `drop` (Linux has 41); each name at
/// most [`CAPABILITY_NAME_MAX`] of `[A-Za-z0-9_]`.
pub const CAPABILITIES_MAX: usize = 64;
/// The length of one capability name.
pub const CAPABILITY_NAME_MAX: usize = 64;
/// Supplemental groups of a pod.
pub const SUPPLEMENTAL_GROUPS_MAX: usize = 256;
/// User and group ids: 0 to 2^31 - 1 (`IsValidUserID` / `IsValidGroupID`).
pub const ID_MAX: i64 = i32::MAX as i64;
/// Labels + annotations of a pod, counted together.
pub const METADATA_ENTRIES_MAX: usize = 1024;
/// Bytes of every key and value of the labels and annotations together:
/// Kubernetes' `TotalAnnotationSizeLimitB` (256 KiB), applied to both.
pub const METADATA_BYTES_MAX: usize = 256 * 1024;
/// The name part of a label or annotation key, and a label value
/// (`qualifiedNameMaxLength`, `LabelValueMaxLength`); a key's prefix is a
/// DNS-1123 subdomain.
pub const QUALIFIED_NAME_MAX: usize = 63;
/// DNS nameservers (`MaxDNSNameservers`, glibc's `MAXNS`).
pub const DNS_SERVERS_MAX: usize = 3;
/// DNS search domains (`MaxDNSSearchPaths`).
pub const DNS_SEARCHES_MAX: usize = 32;
/// Characters of the search list joined by spaces (`MaxDNSSearchListChars`).
pub const DNS_SEARCH_CHARS_MAX: usize = 2048;
/// DNS options, each at most [`DNS_OPTION_MAX`] characters.
pub const DNS_OPTIONS_MAX: usize = 32;
/// The length of one DNS option.
pub const DNS_OPTION_MAX: usize = 255;
/// Sysctls of a pod.
pub const SYSCTLS_MAX: usize = 128;
/// The length of a sysctl name (`SysctlMaxLength`).
pub const SYSCTL_NAME_MAX: usize = 253;
/// Registry credentials of one request.
pub const CREDENTIALS_MAX: usize = 256;
/// Each secret field of a credential (username, password, auth, tokens).
pub const SECRET_MAX: usize = 64 * 1024;
/// Seconds: the pod's and StopPod's grace period, sleep hooks, probe
/// timings, the init timeout. One year: far above any real grace period,
/// far below what deadline arithmetic on `Instant` can overflow.
pub const SECONDS_MAX: i64 = 365 * 24 * 3600;
/// A probe's failure threshold, and a readiness probe's success threshold.
pub const PROBE_THRESHOLD_MAX: i32 = 1_000_000;
/// The service name a gRPC probe asks about (no whitespace or control
/// characters).
pub const GRPC_SERVICE_MAX: usize = TEXT_MAX;
/// Volumes of a pod.
pub const VOLUMES_MAX: usize = 256;
/// Files of a config volume, and of a downward API volume.
pub const VOLUME_FILES_MAX: usize = 1024;
/// Bytes of data of a config volume's files together (a ConfigMap or
/// Secret is at most 1 MiB; a projected volume joins a few).
pub const CONFIG_DATA_MAX: usize = 4 * 1024 * 1024;
/// File permission bits of volume files (`0777`).
pub const FILE_MODE_MAX: i32 = 0o777;
/// Characters of input echoed in a message; longer input is cut and ends
/// in `…`.
pub const ECHO_MAX: usize = 64;

/// The expansion bounds, for [`expand::check_container`].
pub const EXPANSION_LIMITS: expand::Limits = expand::Limits {
    string_bytes: ARG_STRLEN_MAX,
    total_bytes: EXPANDED_TOTAL_MAX,
    field_bytes: fields::FIELD_VALUE_MAX,
};

const LABEL_RULE: &str = "must be a DNS-1123 label: at most 63 characters, lower-case \
    letters, digits and '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "must be a DNS-1123 subdomain: at most 253 characters, \
    dot-separated lower-case labels of letters, digits and '-', each starting and ending \
    with a letter or digit";

/// `s` as a message may show it: quoted, escaped, and cut after
/// [`ECHO_MAX`] characters.
pub fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// `text` cut after `max_chars` characters, "…" marking the cut.
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// No NUL, and at most `max` bytes.
fn check_text(path: &str, value: &str, max: usize) -> Result<(), InvalidSpec> {
    if value.len() > max {
        return Err(invalid(path, format!("must be at most {max} bytes")));
    }
    if value.contains('\0') {
        return Err(invalid(path, "must not contain NUL"));
    }
    Ok(())
}

/// Like [`check_text`], and no whitespace or control characters either.
fn check_token(path: &str, value: &str, max: usize) -> Result<(), InvalidSpec> {
    check_text(path, value, max)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            path,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// At most `max` items.
fn check_count(path: &str, len: usize, max: usize) -> Result<(), InvalidSpec> {
    if len > max {
        return Err(invalid(path, format!("must have at most {max} items")));
    }
    Ok(())
}

/// `lo <= v <= hi`.
fn check_range<T: PartialOrd + std::fmt::Display>(
    path: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), InvalidSpec> {
    if v < lo || v > hi {
        return Err(invalid(path, format!("must be between {lo} and {hi}")));
    }
    Ok(())
}

/// A known value of the enum `E`: prost keeps unknown numbers as they came.
fn check_enum<E: TryFrom<i32>>(path: &str, v: i32) -> Result<(), InvalidSpec> {
    if E::try_from(v).is_err() {
        return Err(invalid(path, format!("unknown enum value {v}")));
    }
    Ok(())
}

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

/// A label or annotation key (`IsQualifiedName`): an optional DNS-1123
/// subdomain prefix and `/`, then a name of at most 63 characters of
/// letters, digits, '-', '_' and '.', starting and ending with a letter or
/// digit.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns1123_subdomain(p))
        && !name.is_empty()
        && is_label_value(name)
}

/// A label value (`IsValidLabelValue`): empty, or at most 63 characters of
/// letters, digits, '-', '_' and '.', starting and ending with a letter or
/// digit.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    match (b.first(), b.last()) {
        (None, _) | (_, None) => true,
        (Some(f), Some(l)) => {
            b.len() <= QUALIFIED_NAME_MAX
                && alnum(f)
                && alnum(l)
                && b.iter()
                    .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
        }
    }
}

/// An env var name (`IsEnvVarName`): `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    let head = |c: &u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    b.first().is_some_and(head) && b.iter().all(|c| head(c) || c.is_ascii_digit())
}

/// A sysctl name (Kubernetes' `IsValidSysctlName`): segments of lower-case
/// letters, digits, '-' and '_', each starting and ending with a letter or
/// digit, separated by '.' or '/'; at most 253 characters.
pub fn is_sysctl_name(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= SYSCTL_NAME_MAX
        && s.split(['.', '/']).all(|seg| {
            let b = seg.as_bytes();
            match (b.first(), b.last()) {
                (Some(&f), Some(&l)) => {
                    alnum(f) && alnum(l) && b.iter().all(|&c| alnum(c) || c == b'-' || c == b'_')
                }
                _ => false,
            }
        })
}

/// An HTTP header name: an RFC 9110 token.
fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Validates a whole StartPod request.
pub fn validate_start_pod(req: &StartPodRequest) -> Result<(), InvalidSpec> {
    let pod = req.pod.as_ref().ok_or_else(|| invalid("pod", "required"))?;
    validate_pod(pod)?;
    validate_credentials("credentials", &req.credentials)?;
    if let Some(o) = req.options.as_ref() {
        validate_options(o)?;
    }
    Ok(())
}

// Long: one rule per field, in the order of the message's fields.
fn validate_pod(pod: &PodSpec) -> Result<(), InvalidSpec> {
    let meta = pod
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("pod.metadata", "required"))?;
    validate_metadata(meta)?;

    if !pod.hostname.is_empty() && !is_dns1123_label(&pod.hostname) {
        return Err(invalid("pod.hostname", LABEL_RULE));
    }
    if !pod.subdomain.is_empty() && !is_dns1123_label(&pod.subdomain) {
        return Err(invalid("pod.subdomain", LABEL_RULE));
    }
    if let Some(d) = pod.dns_config.as_ref() {
        validate_dns("pod.dns_config", d)?;
    }
    if !pod.service_account_name.is_empty() && !is_dns1123_subdomain(&pod.service_account_name) {
        return Err(invalid("pod.service_account_name", SUBDOMAIN_RULE));
    }
    if !pod.runtime_handler.is_empty() && !is_dns1123_label(&pod.runtime_handler) {
        return Err(invalid("pod.runtime_handler", LABEL_RULE));
    }
    if !pod.cgroup_parent.is_empty() {
        check_text("pod.cgroup_parent", &pod.cgroup_parent, PATH_MAX)?;
        if pod.cgroup_parent.split('/').any(|part| part == "..") {
            return Err(invalid(
                "pod.cgroup_parent",
                "must not contain a '..' component",
            ));
        }
    }
    validate_sysctls(&pod.sysctls)?;
    if let Some(sc) = pod.security_context.as_ref() {
        validate_pod_security("pod.security_context", sc)?;
    }
    check_enum::<RestartPolicy>("pod.restart_policy", pod.restart_policy)?;
    if let Some(g) = pod.termination_grace_period_seconds {
        if g < 0 {
            return Err(invalid(
                "pod.termination_grace_period_seconds",
                "must be >= 0",
            ));
        }
        check_range("pod.termination_grace_period_seconds", g, 0, SECONDS_MAX)?;
    }
    if pod.containers.is_empty() {
        return Err(invalid(
            "pod.containers",
            "at least one container is required",
        ));
    }
    let total = pod.init_containers.len() + pod.containers.len() + pod.ephemeral_containers.len();
    if total > CONTAINERS_MAX {
        return Err(invalid(
            "pod.containers",
            format!(
                "a pod has at most {CONTAINERS_MAX} containers (init, app and ephemeral \
                 together); this one has {total}"
            ),
        ));
    }

    validate_volumes(pod)?;

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
            if list == "init_containers" && c.restart_policy() != ContainerRestartPolicy::Always {
                let probes = [
                    ("startup_probe", c.startup_probe.is_some()),
                    ("liveness_probe", c.liveness_probe.is_some()),
                    ("readiness_probe", c.readiness_probe.is_some()),
                ];
                if let Some((name, _)) = probes.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        format!("{path}.{name}"),
                        "only allowed on init containers with restart_policy ALWAYS (sidecars)",
                    ));
                }
            }
            if list != "ephemeral_containers" && !c.target_container_name.is_empty() {
                return Err(invalid(
                    format!("{path}.target_container_name"),
                    "only allowed on ephemeral containers",
                ));
            }
            check_mount_volumes(&path, c, &pod.volumes)?;
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("duplicate name {}", echo(&c.name)),
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
                format!(
                    "must name an app or init container; {} is neither",
                    echo(target)
                ),
            ));
        }
    }
    validate_env_sources(pod)?;
    validate_pod_resources(pod)?;
    Ok(())
}

/// What an env var's `value_from` reads must exist in the pod: the
/// container a resource names (an init or app container), an annotation of
/// at most [`fields::FIELD_VALUE_MAX`] bytes (absent ones read as empty, as
/// in Kubernetes).
fn validate_env_sources(pod: &PodSpec) -> Result<(), InvalidSpec> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let lists = [
        ("init_containers", &pod.init_containers),
        ("containers", &pod.containers),
        ("ephemeral_containers", &pod.ephemeral_containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            for (j, e) in c.env.iter().enumerate() {
                let path = format!("pod.{list}[{i}].env[{j}].value_from");
                match e.value_from.as_ref().and_then(|f| f.source.as_ref()) {
                    Some(field_source::Source::ResourceField(r))
                        if !r.container_name.is_empty()
                            && !pod
                                .init_containers
                                .iter()
                                .chain(&pod.containers)
                                .any(|o| o.name == r.container_name) =>
                    {
                        return Err(invalid(
                            format!("{path}.resource_field.container_name"),
                            format!(
                                "must name an app or init container; {} is neither",
                                echo(&r.container_name)
                            ),
                        ));
                    }
                    Some(field_source::Source::FieldPath(p)) => {
                        if let Some(("metadata.annotations", key)) = fields::subscript(p)
                            && meta
                                .annotations
                                .get(key)
                                .is_some_and(|v| v.len() > fields::FIELD_VALUE_MAX)
                        {
                            return Err(invalid(
                                format!("{path}.field_path"),
                                format!(
                                    "annotation {} is longer than {} bytes, the most an \
                                     env var reads from the pod's fields",
                                    echo(key),
                                    fields::FIELD_VALUE_MAX
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn validate_metadata(meta: &PodMetadata) -> Result<(), InvalidSpec> {
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

    let entries = meta.labels.len() + meta.annotations.len();
    if entries > METADATA_ENTRIES_MAX {
        return Err(invalid(
            "pod.metadata.labels",
            format!(
                "labels and annotations together must have at most \
                 {METADATA_ENTRIES_MAX} entries; got {entries}"
            ),
        ));
    }
    let mut bytes = 0usize;
    for (k, v) in &meta.labels {
        check_label("pod.metadata.labels", k, v)?;
        bytes += k.len() + v.len();
    }
    for (k, v) in &meta.annotations {
        if !is_qualified_name(k) {
            return Err(invalid(
                "pod.metadata.annotations",
                format!(
                    "key {} must be a qualified name: an optional DNS-1123 subdomain \
                     and '/', then at most 63 letters, digits, '-', '_' and '.', \
                     starting and ending with a letter or digit",
                    echo(k)
                ),
            ));
        }
        if v.contains('\0') {
            return Err(invalid(
                "pod.metadata.annotations",
                format!("value of {} must not contain NUL", echo(k)),
            ));
        }
        bytes = bytes.saturating_add(k.len() + v.len());
    }
    if bytes > METADATA_BYTES_MAX {
        return Err(invalid(
            "pod.metadata.annotations",
            format!("labels and annotations together must be at most {METADATA_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// One label (or label selector pair): a qualified-name key and a label
/// value, as Kubernetes' `ValidateLabels`.
fn check_label(path: &str, k: &str, v: &str) -> Result<(), InvalidSpec> {
    if !is_qualified_name(k) {
        return Err(invalid(
            path,
            format!(
                "key {} must be a qualified name: an optional DNS-1123 subdomain \
                 and '/', then at most 63 letters, digits, '-', '_' and '.', \
                 starting and ending with a letter or digit",
                echo(k)
            ),
        ));
    }
    if !is_label_value(v) {
        return Err(invalid(
            path,
            format!(
                "value of {} must be empty or at most 63 letters, digits, '-', '_' \
                 and '.', starting and ending with a letter or digit",
                echo(k)
            ),
        ));
    }
    Ok(())
}

/// Validates a ListPods request: a namespace filter is a DNS-1123 label;
/// the label selector has at most [`METADATA_ENTRIES_MAX`] pairs, each a
/// label as pods carry them (it reaches the runtime's filter).
pub fn validate_list_pods(req: &ListPodsRequest) -> Result<(), InvalidSpec> {
    if !req.namespace.is_empty() && !is_dns1123_label(&req.namespace) {
        return Err(invalid("namespace", LABEL_RULE));
    }
    check_count(
        "label_selector",
        req.label_selector.len(),
        METADATA_ENTRIES_MAX,
    )?;
    for (k, v) in &req.label_selector {
        check_label("label_selector", k, v)?;
    }
    Ok(())
}

/// Validates a WatchEvents request: its filters follow the rules of what
/// they filter (a pod uid, a namespace).
pub fn validate_watch_events(req: &WatchEventsRequest) -> Result<(), InvalidSpec> {
    if !req.pod_uid.is_empty() {
        validate_uid("pod_uid", &req.pod_uid)?;
    }
    if !req.namespace.is_empty() && !is_dns1123_label(&req.namespace) {
        return Err(invalid("namespace", LABEL_RULE));
    }
    Ok(())
}

/// Kubernetes' `validatePodDNSConfig`: at most 3 nameservers, each an IP
/// address; at most 32 search domains, each a DNS-1123 subdomain (a
/// trailing '.' allowed), 2048 characters in all.
fn validate_dns(path: &str, d: &DnsConfig) -> Result<(), InvalidSpec> {
    let servers = format!("{path}.servers");
    check_count(&servers, d.servers.len(), DNS_SERVERS_MAX)?;
    for (i, s) in d.servers.iter().enumerate() {
        if s.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                format!("{servers}[{i}]"),
                format!("must be an IP address; {} is not", echo(s)),
            ));
        }
    }
    let searches = format!("{path}.searches");
    check_count(&searches, d.searches.len(), DNS_SEARCHES_MAX)?;
    let chars = d.searches.iter().map(String::len).sum::<usize>() + d.searches.len();
    if chars.saturating_sub(1) > DNS_SEARCH_CHARS_MAX {
        return Err(invalid(
            &searches,
            format!("must be at most {DNS_SEARCH_CHARS_MAX} characters in all"),
        ));
    }
    for (i, s) in d.searches.iter().enumerate() {
        if !is_dns1123_subdomain(s.strip_suffix('.').unwrap_or(s)) {
            return Err(invalid(format!("{searches}[{i}]"), SUBDOMAIN_RULE));
        }
    }
    let options = format!("{path}.options");
    check_count(&options, d.options.len(), DNS_OPTIONS_MAX)?;
    for (i, o) in d.options.iter().enumerate() {
        let p = format!("{options}[{i}]");
        if o.is_empty() {
            return Err(invalid(p, "required"));
        }
        check_token(&p, o, DNS_OPTION_MAX)?;
    }
    Ok(())
}

fn validate_sysctls(sysctls: &HashMap<String, String>) -> Result<(), InvalidSpec> {
    check_count("pod.sysctls", sysctls.len(), SYSCTLS_MAX)?;
    for (name, value) in sysctls {
        if name.is_empty() {
            return Err(invalid("pod.sysctls", "names must not be empty"));
        }
        if !is_sysctl_name(name) {
            return Err(invalid(
                "pod.sysctls",
                format!(
                    "name {} must be at most 253 characters: segments of lower-case \
                     letters, digits, '-' and '_' separated by '.' or '/'",
                    echo(name)
                ),
            ));
        }
        if value.len() > TEXT_MAX || value.contains('\0') {
            return Err(invalid(
                "pod.sysctls",
                format!(
                    "value of {} must be at most {TEXT_MAX} bytes, without NUL",
                    echo(name)
                ),
            ));
        }
    }
    Ok(())
}

fn check_id(path: &str, id: Option<i64>) -> Result<(), InvalidSpec> {
    match id {
        Some(v) => check_range(path, v, 0, ID_MAX),
        None => Ok(()),
    }
}

fn validate_pod_security(path: &str, sc: &PodSecurityContext) -> Result<(), InvalidSpec> {
    check_id(&format!("{path}.run_as_user"), sc.run_as_user)?;
    check_id(&format!("{path}.run_as_group"), sc.run_as_group)?;
    check_id(&format!("{path}.fs_group"), sc.fs_group)?;
    let groups = format!("{path}.supplemental_groups");
    check_count(
        &groups,
        sc.supplemental_groups.len(),
        SUPPLEMENTAL_GROUPS_MAX,
    )?;
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        check_range(&format!("{groups}[{i}]"), *g, 0, ID_MAX)?;
    }
    if let Some(p) = sc.seccomp_profile.as_ref() {
        validate_seccomp(&format!("{path}.seccomp_profile"), p)?;
    }
    if let Some(p) = sc.apparmor_profile.as_ref() {
        validate_apparmor(&format!("{path}.apparmor_profile"), p)?;
    }
    Ok(())
}

fn validate_security(path: &str, sc: &SecurityContext) -> Result<(), InvalidSpec> {
    check_id(&format!("{path}.run_as_user"), sc.run_as_user)?;
    check_id(&format!("{path}.run_as_group"), sc.run_as_group)?;
    if let Some(caps) = sc.capabilities.as_ref() {
        for (list, names) in [("add", &caps.add), ("drop", &caps.drop)] {
            let p = format!("{path}.capabilities.{list}");
            check_count(&p, names.len(), CAPABILITIES_MAX)?;
            for (i, n) in names.iter().enumerate() {
                if n.is_empty()
                    || n.len() > CAPABILITY_NAME_MAX
                    || !n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    return Err(invalid(
                        format!("{p}[{i}]"),
                        format!(
                            "must be a capability name: 1 to {CAPABILITY_NAME_MAX} letters, \
                             digits and '_'"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(p) = sc.seccomp_profile.as_ref() {
        validate_seccomp(&format!("{path}.seccomp_profile"), p)?;
    }
    if let Some(p) = sc.apparmor_profile.as_ref() {
        validate_apparmor(&format!("{path}.apparmor_profile"), p)?;
    }
    Ok(())
}

/// A known type; a localhost profile is a relative path under the
/// runtime's profile root (Kubernetes' `localhostProfile`), without a '..'
/// component, given only with TYPE_LOCALHOST.
fn validate_seccomp(path: &str, p: &SeccompProfile) -> Result<(), InvalidSpec> {
    check_enum::<seccomp_profile::Type>(&format!("{path}.type"), p.r#type)?;
    let lp = format!("{path}.localhost_profile");
    let localhost = p.r#type() == seccomp_profile::Type::Localhost;
    if !localhost_profile_given(&lp, localhost, &p.localhost_profile)? {
        return Ok(());
    }
    check_text(&lp, &p.localhost_profile, PATH_MAX)?;
    if p.localhost_profile.starts_with('/') {
        return Err(invalid(lp, "must be a relative path"));
    }
    if p.localhost_profile.split('/').any(|part| part == "..") {
        return Err(invalid(lp, "must not contain a '..' component"));
    }
    Ok(())
}

/// A seccomp or AppArmor profile's `localhost_profile` (at `lp`): required
/// with TYPE_LOCALHOST, refused with any other type. True when it is given
/// (and its own rules are to be checked).
fn localhost_profile_given(lp: &str, localhost: bool, profile: &str) -> Result<bool, InvalidSpec> {
    match (localhost, profile.is_empty()) {
        (false, false) => Err(invalid(lp, "only allowed with TYPE_LOCALHOST")),
        (false, true) => Ok(false),
        (true, true) => Err(invalid(lp, "required with TYPE_LOCALHOST")),
        (true, false) => Ok(true),
    }
}

/// Requests and limits: none negative, a request at most its limit.
fn validate_resources(rp: &str, r: &Resources) -> Result<(), InvalidSpec> {
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
    Ok(())
}

/// Pod-level resources (KEP-2837): valid on their own, at least what the
/// containers request together (requests and limits alike), and no
/// container's limit above the pod's.
fn validate_pod_resources(pod: &PodSpec) -> Result<(), InvalidSpec> {
    let Some(r) = pod.resources.as_ref() else {
        return Ok(());
    };
    validate_resources("pod.resources", r)?;
    let sum = resources::containers_requests(pod);
    let checks = [
        (
            "cpu_request_millis",
            r.cpu_request_millis,
            sum.cpu_millis,
            "millicores",
        ),
        (
            "cpu_limit_millis",
            r.cpu_limit_millis,
            sum.cpu_millis,
            "millicores",
        ),
        (
            "memory_request_bytes",
            r.memory_request_bytes,
            sum.memory_bytes,
            "bytes",
        ),
        (
            "memory_limit_bytes",
            r.memory_limit_bytes,
            sum.memory_bytes,
            "bytes",
        ),
    ];
    for (name, pod_value, containers, unit) in checks {
        if pod_value > 0 && containers > pod_value {
            return Err(invalid(
                format!("pod.resources.{name}"),
                format!(
                    "must be at least what the containers request together \
                     ({containers} {unit})"
                ),
            ));
        }
    }
    let lists = [
        ("init_containers", &pod.init_containers),
        ("containers", &pod.containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let own = c.resources.unwrap_or_default();
            let limits = [
                ("cpu_limit_millis", own.cpu_limit_millis, r.cpu_limit_millis),
                (
                    "memory_limit_bytes",
                    own.memory_limit_bytes,
                    r.memory_limit_bytes,
                ),
            ];
            for (name, own, pod_limit) in limits {
                if pod_limit > 0 && own > pod_limit {
                    return Err(invalid(
                        format!("pod.{list}[{i}].resources.{name}"),
                        format!("must be <= the pod's {name} ({pod_limit})"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A known type; a localhost profile is the name of a profile loaded on
/// the node (at most [`TEXT_MAX`] bytes, no whitespace), given only with
/// TYPE_LOCALHOST.
fn validate_apparmor(path: &str, p: &AppArmorProfile) -> Result<(), InvalidSpec> {
    check_enum::<app_armor_profile::Type>(&format!("{path}.type"), p.r#type)?;
    let lp = format!("{path}.localhost_profile");
    let localhost = p.r#type() == app_armor_profile::Type::Localhost;
    if !localhost_profile_given(&lp, localhost, &p.localhost_profile)? {
        return Ok(());
    }
    check_text(&lp, &p.localhost_profile, TEXT_MAX)?;
    if p.localhost_profile.chars().any(char::is_whitespace) {
        return Err(invalid(lp, "must not contain whitespace"));
    }
    Ok(())
}

/// Each credential names its registry (a credential without a server would
/// be offered to every registry), and its secrets are bounded. Secrets are
/// never echoed.
fn validate_credentials(path: &str, creds: &[RegistryCredential]) -> Result<(), InvalidSpec> {
    check_count(path, creds.len(), CREDENTIALS_MAX)?;
    for (i, c) in creds.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let server = format!("{p}.server");
        check_token(&server, &c.server, TEXT_MAX)?;
        let host = ["https://", "http://"]
            .iter()
            .find_map(|scheme| {
                c.server
                    .get(..scheme.len())
                    .filter(|head| head.eq_ignore_ascii_case(scheme))
                    .map(|_| &c.server[scheme.len()..])
            })
            .unwrap_or(&c.server)
            .trim_matches('/');
        if host.is_empty() {
            return Err(invalid(
                server,
                "required: a credential names the registry it is for",
            ));
        }
        let secrets = [
            ("username", &c.username),
            ("password", &c.password),
            ("auth", &c.auth),
            ("identity_token", &c.identity_token),
            ("registry_token", &c.registry_token),
        ];
        for (name, value) in secrets {
            check_text(&format!("{p}.{name}"), value, SECRET_MAX)?;
        }
    }
    Ok(())
}

fn validate_options(o: &StartOptions) -> Result<(), InvalidSpec> {
    check_enum::<AppStartMode>("options.app_start", o.app_start)?;
    check_range(
        "options.init_timeout_seconds",
        i64::from(o.init_timeout_seconds),
        0,
        SECONDS_MAX,
    )
}

/// Validates a StartContainer request: the pod uid, the credentials, and
/// the container as an ephemeral one. Its name and target are checked
/// against the running pod by the start flow.
pub fn validate_start_container(req: &StartContainerRequest) -> Result<(), InvalidSpec> {
    validate_uid("pod_uid", &req.pod_uid)?;
    let c = req
        .container
        .as_ref()
        .ok_or_else(|| invalid("container", "required"))?;
    validate_ephemeral("container", c)?;
    validate_credentials("credentials", &req.credentials)
}

/// A pod reference (StopPod, GetPod) names the pod by its uid, or by both
/// namespace and name; each part given follows its rule.
pub fn validate_pod_ref(pod: &PodRef) -> Result<(), InvalidSpec> {
    if pod.uid.is_empty() && (pod.namespace.is_empty() || pod.name.is_empty()) {
        return Err(invalid("pod", "give the uid, or both namespace and name"));
    }
    if !pod.uid.is_empty() {
        validate_uid("pod.uid", &pod.uid)?;
    }
    if !pod.namespace.is_empty() && !is_dns1123_label(&pod.namespace) {
        return Err(invalid("pod.namespace", LABEL_RULE));
    }
    if !pod.name.is_empty() && !is_dns1123_subdomain(&pod.name) {
        return Err(invalid("pod.name", SUBDOMAIN_RULE));
    }
    Ok(())
}

/// Validates a StopPod request: the pod reference and the grace period.
pub fn validate_stop_pod(req: &StopPodRequest) -> Result<(), InvalidSpec> {
    validate_pod_ref(req.pod.as_ref().unwrap_or(&PodRef::default()))?;
    if let Some(g) = req.grace_period_seconds {
        check_range("grace_period_seconds", g, 0, SECONDS_MAX)?;
    }
    Ok(())
}

/// A uid is one safe path component: 1 to 128 of `[A-Za-z0-9._-]`, not
/// `.` or `..`.
fn validate_uid(path: &str, uid: &str) -> Result<(), InvalidSpec> {
    if uid.is_empty() {
        return Err(invalid(path, "required"));
    }
    if uid.len() > UID_MAX {
        return Err(invalid(path, "must be at most 128 characters"));
    }
    if uid.contains('/') {
        return Err(invalid(path, "must not contain '/'"));
    }
    if uid.chars().any(char::is_whitespace) {
        return Err(invalid(path, "must not contain whitespace"));
    }
    if uid == "." || uid == ".." {
        return Err(invalid(path, "must not be '.' or '..'"));
    }
    if !uid
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            path,
            "must contain only letters, digits, '.', '_' and '-'",
        ));
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
    let probes = [
        ("startup_probe", c.startup_probe.is_some()),
        ("liveness_probe", c.liveness_probe.is_some()),
        ("readiness_probe", c.readiness_probe.is_some()),
    ];
    if let Some((name, _)) = probes.iter().find(|(_, set)| *set) {
        return Err(invalid(format!("{path}.{name}"), NOT_ALLOWED));
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
    check_text(&field("image"), &c.image, TEXT_MAX)?;
    if let Err(e) = image::parse_image(&c.image) {
        return Err(invalid(
            field("image"),
            format!("invalid image reference: {}", e.reason),
        ));
    }
    check_enum::<PullPolicy>(&field("image_pull_policy"), c.image_pull_policy)?;
    check_args(&field("command"), &c.command)?;
    check_args(&field("args"), &c.args)?;
    check_text(&field("working_dir"), &c.working_dir, PATH_MAX)?;

    validate_env(path, c)?;

    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    check_count(&field("mounts"), c.mounts.len(), MOUNTS_MAX)?;
    for (i, m) in c.mounts.iter().enumerate() {
        let p = field(&format!("mounts[{i}]"));
        check_path(&format!("{p}.container_path"), &m.container_path)?;
        validate_mount_source(&p, m)?;
        check_enum::<MountPropagation>(&format!("{p}.propagation"), m.propagation)?;
        if m.propagation() == MountPropagation::Bidirectional && !privileged {
            return Err(invalid(
                format!("{p}.propagation"),
                "BIDIRECTIONAL is only allowed on privileged containers",
            ));
        }
    }
    check_count(&field("devices"), c.devices.len(), DEVICES_MAX)?;
    for (i, d) in c.devices.iter().enumerate() {
        let p = field(&format!("devices[{i}]"));
        check_path(&format!("{p}.container_path"), &d.container_path)?;
        check_path(&format!("{p}.host_path"), &d.host_path)?;
        if d.permissions.len() > 3
            || !d
                .permissions
                .chars()
                .all(|ch| matches!(ch, 'r' | 'w' | 'm'))
        {
            return Err(invalid(
                format!("{p}.permissions"),
                "must only contain 'r', 'w' and 'm', at most 3 characters",
            ));
        }
    }

    check_count(&field("ports"), c.ports.len(), PORTS_MAX)?;
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
        if !p.host_ip.is_empty() && p.host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                format!("{pp}.host_ip"),
                format!("must be an IP address; {} is not", echo(&p.host_ip)),
            ));
        }
        check_enum::<Protocol>(&format!("{pp}.protocol"), p.protocol)?;
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
                    format!("duplicate port name {}", echo(&p.name)),
                ));
            }
        }
    }

    if let Some(sc) = c.security_context.as_ref() {
        validate_security(&field("security_context"), sc)?;
    }

    if let Some(l) = c.lifecycle.as_ref() {
        if let Some(h) = l.post_start.as_ref() {
            validate_hook(&field("lifecycle.post_start"), h, c)?;
        }
        if let Some(h) = l.pre_stop.as_ref() {
            validate_hook(&field("lifecycle.pre_stop"), h, c)?;
        }
    }

    let probes = [
        (ProbeKind::Startup, c.startup_probe.as_ref()),
        (ProbeKind::Liveness, c.liveness_probe.as_ref()),
        (ProbeKind::Readiness, c.readiness_probe.as_ref()),
    ];
    for (kind, p) in probes {
        if let Some(p) = p {
            validate_probe(&field(kind.field()), kind, p, c)?;
        }
    }

    if let Some(r) = c.resources.as_ref() {
        validate_resources(&field("resources"), r)?;
    }

    check_enum::<ContainerRestartPolicy>(&field("restart_policy"), c.restart_policy)?;
    if !c.termination_message_path.is_empty() {
        check_path(
            &field("termination_message_path"),
            &c.termination_message_path,
        )?;
    }
    check_enum::<TerminationMessagePolicy>(
        &field("termination_message_policy"),
        c.termination_message_policy,
    )?;
    if !c.target_container_name.is_empty() && !is_dns1123_label(&c.target_container_name) {
        return Err(invalid(field("target_container_name"), LABEL_RULE));
    }

    // Last: the other rules bound the strings this measures.
    if let Err(e) = expand::check_container(c, EXPANSION_LIMITS) {
        return Err(invalid(field(&e.field), e.rule));
    }
    Ok(())
}

/// Env names follow Kubernetes' rule, values have no NUL; both bounded.
fn validate_env(path: &str, c: &Container) -> Result<(), InvalidSpec> {
    check_count(&format!("{path}.env"), c.env.len(), ENV_MAX)?;
    for (i, e) in c.env.iter().enumerate() {
        let p = format!("{path}.env[{i}].name");
        if e.name.is_empty() {
            return Err(invalid(p, "required"));
        }
        if e.name.contains('=') {
            return Err(invalid(p, "must not contain '='"));
        }
        if e.name.len() > TEXT_MAX {
            return Err(invalid(p, format!("must be at most {TEXT_MAX} bytes")));
        }
        if !is_env_var_name(&e.name) {
            return Err(invalid(
                p,
                "must consist of letters, digits, '_', '-' and '.', and not start \
                 with a digit",
            ));
        }
        check_text(&format!("{path}.env[{i}].value"), &e.value, ARG_STRLEN_MAX)?;
        if let Some(src) = &e.value_from {
            if !e.value.is_empty() {
                return Err(invalid(
                    format!("{path}.env[{i}].value"),
                    "must be empty when value_from is set",
                ));
            }
            if let Err((f, rule)) = fields::check_env_source(src) {
                return Err(invalid(format!("{path}.env[{i}].value_from.{f}"), rule));
            }
        }
    }
    Ok(())
}

/// A command or args list: at most [`ARGS_MAX`] elements, each at most
/// [`ARG_STRLEN_MAX`] bytes without NUL.
fn check_args(path: &str, items: &[String]) -> Result<(), InvalidSpec> {
    check_count(path, items.len(), ARGS_MAX)?;
    for (i, s) in items.iter().enumerate() {
        check_text(&format!("{path}[{i}]"), s, ARG_STRLEN_MAX)?;
    }
    Ok(())
}

/// A mount binds exactly one of a host path and a volume; a subPath is
/// relative, without "..", and only with a volume.
fn validate_mount_source(p: &str, m: &Mount) -> Result<(), InvalidSpec> {
    match (m.host_path.is_empty(), m.volume_name.is_empty()) {
        (true, true) | (false, false) => {
            return Err(invalid(
                p.to_string(),
                "exactly one of host_path and volume_name is required",
            ));
        }
        (false, true) => {
            check_path(&format!("{p}.host_path"), &m.host_path)?;
            if !m.sub_path.is_empty() {
                return Err(invalid(
                    format!("{p}.sub_path"),
                    "only allowed with volume_name",
                ));
            }
        }
        (true, false) => {
            if !is_dns1123_label(&m.volume_name) {
                return Err(invalid(format!("{p}.volume_name"), LABEL_RULE));
            }
            if !m.sub_path.is_empty() {
                check_relative_path(&format!("{p}.sub_path"), &m.sub_path)?;
            }
        }
    }
    Ok(())
}

/// Every volume a container mounts is one of the pod's.
fn check_mount_volumes(path: &str, c: &Container, volumes: &[Volume]) -> Result<(), InvalidSpec> {
    for (i, m) in c.mounts.iter().enumerate() {
        if !m.volume_name.is_empty() && !volumes.iter().any(|v| v.name == m.volume_name) {
            return Err(invalid(
                format!("{path}.mounts[{i}].volume_name"),
                format!(
                    "must name a volume of the pod; {} is not one",
                    echo(&m.volume_name)
                ),
            ));
        }
    }
    Ok(())
}

/// A relative path: not empty, no leading '/', no ".." component, no
/// empty or "." component, at most [`PATH_MAX`] bytes.
fn check_relative_path(path: &str, value: &str) -> Result<(), InvalidSpec> {
    if value.is_empty() {
        return Err(invalid(path, "required"));
    }
    check_text(path, value, PATH_MAX)?;
    if value.starts_with('/') {
        return Err(invalid(path, "must be a relative path"));
    }
    if value.split('/').any(|part| part == "..") {
        return Err(invalid(path, "must not contain a '..' component"));
    }
    if value.split('/').any(|part| part.is_empty() || part == ".") {
        return Err(invalid(path, "must not contain an empty or '.' component"));
    }
    Ok(())
}

/// The pod's volumes: at most [`VOLUMES_MAX`], names DNS-1123 labels and
/// unique, each with exactly one source that follows its rules.
fn validate_volumes(pod: &PodSpec) -> Result<(), InvalidSpec> {
    check_count("pod.volumes", pod.volumes.len(), VOLUMES_MAX)?;
    let mut names = HashSet::new();
    for (i, v) in pod.volumes.iter().enumerate() {
        let p = format!("pod.volumes[{i}]");
        if v.name.is_empty() {
            return Err(invalid(format!("{p}.name"), "required"));
        }
        if !is_dns1123_label(&v.name) {
            return Err(invalid(format!("{p}.name"), LABEL_RULE));
        }
        if !names.insert(v.name.as_str()) {
            return Err(invalid(
                format!("{p}.name"),
                format!("duplicate name {}", echo(&v.name)),
            ));
        }
        let source = v.source.as_ref().ok_or_else(|| {
            invalid(
                p.clone(),
                "exactly one source (empty_dir, config, downward_api, host_path) is required",
            )
        })?;
        match source {
            volume::Source::EmptyDir(e) => {
                check_enum::<StorageMedium>(&format!("{p}.empty_dir.medium"), e.medium)?;
                if e.size_limit_bytes.is_some_and(|l| l < 0) {
                    return Err(invalid(
                        format!("{p}.empty_dir.size_limit_bytes"),
                        "must be >= 0",
                    ));
                }
            }
            volume::Source::Config(c) => {
                let q = format!("{p}.config");
                check_mode(&format!("{q}.default_mode"), c.default_mode)?;
                check_count(&format!("{q}.files"), c.files.len(), VOLUME_FILES_MAX)?;
                let total: usize = c.files.iter().map(|f| f.data.len()).sum();
                if total > CONFIG_DATA_MAX {
                    return Err(invalid(
                        format!("{q}.files"),
                        format!("must hold at most {CONFIG_DATA_MAX} bytes of data together"),
                    ));
                }
                for (j, f) in c.files.iter().enumerate() {
                    check_mode(&format!("{q}.files[{j}].mode"), f.mode)?;
                }
                check_file_paths(&q, c.files.iter().map(|f| f.path.as_str()))?;
            }
            volume::Source::DownwardApi(d) => {
                let q = format!("{p}.downward_api");
                check_mode(&format!("{q}.default_mode"), d.default_mode)?;
                check_count(&format!("{q}.files"), d.files.len(), VOLUME_FILES_MAX)?;
                for (j, f) in d.files.iter().enumerate() {
                    let fp = format!("{q}.files[{j}]");
                    check_mode(&format!("{fp}.mode"), f.mode)?;
                    validate_volume_field(&format!("{fp}.source"), f.source.as_ref(), pod)?;
                }
                check_file_paths(&q, d.files.iter().map(|f| f.path.as_str()))?;
            }
            volume::Source::HostPath(h) => {
                check_path(&format!("{p}.host_path.path"), &h.path)?;
                check_enum::<HostPathType>(&format!("{p}.host_path.type"), h.r#type)?;
            }
        }
    }
    Ok(())
}

/// Permission bits 0 to 0777, when given.
fn check_mode(path: &str, mode: Option<i32>) -> Result<(), InvalidSpec> {
    match mode {
        Some(m) if !(0..=FILE_MODE_MAX).contains(&m) => Err(invalid(
            path,
            format!("must be between 0 and 0777 (511); got {m}"),
        )),
        _ => Ok(()),
    }
}

/// The files of a volume: each path relative, without "..", not starting
/// with ".." (the writer's own names), unique, and no file a directory of
/// another.
fn check_file_paths<'a>(
    volume_path: &str,
    paths: impl Iterator<Item = &'a str>,
) -> Result<(), InvalidSpec> {
    let paths: Vec<&str> = paths.collect();
    let mut seen = HashSet::new();
    for (j, path) in paths.iter().enumerate() {
        let fp = format!("{volume_path}.files[{j}].path");
        check_relative_path(&fp, path)?;
        if path.starts_with("..") {
            return Err(invalid(fp, "must not start with '..'"));
        }
        if !seen.insert(*path) {
            return Err(invalid(fp, format!("duplicate path {}", echo(path))));
        }
    }
    for (j, path) in paths.iter().enumerate() {
        let mut dir = String::new();
        for part in path.split('/') {
            if !dir.is_empty() && seen.contains(dir.as_str()) {
                return Err(invalid(
                    format!("{volume_path}.files[{j}].path"),
                    format!("{} is a file of the volume, not a directory", echo(&dir)),
                ));
            }
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
        }
    }
    Ok(())
}

/// The fields a downward API volume file may read: `metadata.*` (name,
/// namespace, uid, labels, annotations, one label or annotation) or a
/// named container's resource with a divisor Kubernetes accepts.
fn validate_volume_field(
    path: &str,
    source: Option<&FieldSource>,
    pod: &PodSpec,
) -> Result<(), InvalidSpec> {
    let source = source.and_then(|s| s.source.as_ref()).ok_or_else(|| {
        invalid(
            path,
            "exactly one of field_path and resource_field is required",
        )
    })?;
    match source {
        field_source::Source::FieldPath(f) => {
            let fp = format!("{path}.field_path");
            let whole = [
                "metadata.name",
                "metadata.namespace",
                "metadata.uid",
                "metadata.labels",
                "metadata.annotations",
            ];
            let ok = whole.contains(&f.as_str())
                || downward::subscript(f).is_some_and(|(map, key)| {
                    matches!(map, "metadata.labels" | "metadata.annotations")
                        && is_qualified_name(key)
                });
            if !ok {
                return Err(invalid(
                    fp,
                    format!(
                        "{} is not supported in a volume: one of metadata.name,                          metadata.namespace, metadata.uid, metadata.labels,                          metadata.annotations, metadata.labels['KEY'],                          metadata.annotations['KEY']",
                        echo(f)
                    ),
                ));
            }
        }
        field_source::Source::ResourceField(r) => {
            let rp = format!("{path}.resource_field");
            if r.container_name.is_empty() {
                return Err(invalid(
                    format!("{rp}.container_name"),
                    "required in a volume",
                ));
            }
            if !pod
                .init_containers
                .iter()
                .chain(&pod.containers)
                .any(|c| c.name == r.container_name)
            {
                return Err(invalid(
                    format!("{rp}.container_name"),
                    format!(
                        "must name an app or init container; {} is neither",
                        echo(&r.container_name)
                    ),
                ));
            }
            let divisor = match r.resource.as_str() {
                "limits.cpu" | "requests.cpu" => downward::cpu_divisor_millis(&r.divisor).map(drop),
                "limits.memory" | "requests.memory" => {
                    downward::memory_divisor_bytes(&r.divisor).map(drop)
                }
                _ => {
                    return Err(invalid(
                        format!("{rp}.resource"),
                        format!(
                            "must be limits.cpu, limits.memory, requests.cpu or                              requests.memory; got {}",
                            echo(&r.resource)
                        ),
                    ));
                }
            };
            divisor.map_err(|e| invalid(format!("{rp}.divisor"), e))?;
        }
    }
    Ok(())
}

/// An absolute path without a `..` component, NUL or more than
/// [`PATH_MAX`] bytes.
fn check_path(path: &str, value: &str) -> Result<(), InvalidSpec> {
    check_text(path, value, PATH_MAX)?;
    if !value.starts_with('/') {
        return Err(invalid(path, "must be an absolute path"));
    }
    if value.split('/').any(|part| part == "..") {
        return Err(invalid(path, "must not contain a '..' component"));
    }
    Ok(())
}

/// A probe: exec, HTTP GET or TCP (not sleep). `period_seconds` and
/// `failure_threshold` at least 1; `initial_delay_seconds` at least 0;
/// `timeout_seconds` and `success_threshold` 0 for Kubernetes' default of
/// 1, and `success_threshold` 1 at most (Kubernetes' rule for startup
/// probes). Seconds at most [`SECONDS_MAX`].
/// Which of a container's probes is validated: their success thresholds
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    fn field(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup_probe",
            ProbeKind::Liveness => "liveness_probe",
            ProbeKind::Readiness => "readiness_probe",
        }
    }
}

fn validate_probe(
    path: &str,
    kind: ProbeKind,
    p: &Probe,
    c: &Container,
) -> Result<(), InvalidSpec> {
    let seconds_max = i32::try_from(SECONDS_MAX).unwrap_or(i32::MAX);
    let timings = [
        (
            "initial_delay_seconds",
            p.initial_delay_seconds,
            0,
            seconds_max,
        ),
        ("period_seconds", p.period_seconds, 1, seconds_max),
        ("timeout_seconds", p.timeout_seconds, 0, seconds_max),
        (
            "failure_threshold",
            p.failure_threshold,
            1,
            PROBE_THRESHOLD_MAX,
        ),
    ];
    for (name, v, lo, hi) in timings {
        if v < 0 {
            return Err(invalid(format!("{path}.{name}"), "must be >= 0"));
        }
        check_range(&format!("{path}.{name}"), v, lo, hi)?;
    }
    let success = format!("{path}.success_threshold");
    match kind {
        ProbeKind::Readiness => {
            if p.success_threshold < 0 {
                return Err(invalid(success, "must be >= 0"));
            }
            check_range(&success, p.success_threshold, 0, PROBE_THRESHOLD_MAX)?;
        }
        ProbeKind::Startup | ProbeKind::Liveness if !(0..=1).contains(&p.success_threshold) => {
            let which = if kind == ProbeKind::Startup {
                "startup"
            } else {
                "liveness"
            };
            return Err(invalid(success, format!("must be 1 for a {which} probe")));
        }
        ProbeKind::Startup | ProbeKind::Liveness => {}
    }
    let h = p
        .handler
        .as_ref()
        .ok_or_else(|| invalid(format!("{path}.handler"), "required"))?;
    let hp = format!("{path}.handler");
    match h.action.as_ref() {
        None => Err(invalid(
            hp,
            "must specify one of exec, http_get, tcp_socket or grpc",
        )),
        Some(Action::Sleep(_)) => Err(invalid(format!("{hp}.sleep"), "not supported in a probe")),
        Some(Action::TcpSocket(t)) => {
            check_token(
                &format!("{hp}.tcp_socket.host"),
                &t.host,
                DNS1123_SUBDOMAIN_MAX,
            )?;
            check_port(&format!("{hp}.tcp_socket.port"), &t.port, c)
        }
        Some(Action::Grpc(g)) => {
            check_range(&format!("{hp}.grpc.port"), g.port, 1, 65535)?;
            check_token(&format!("{hp}.grpc.service"), &g.service, GRPC_SERVICE_MAX)
        }
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
                 {} is neither",
                echo(port)
            ),
        ))
    }
}

// Long: one arm per handler kind, each field's rule in order.
fn validate_hook(path: &str, h: &Handler, c: &Container) -> Result<(), InvalidSpec> {
    match h.action.as_ref() {
        None => Err(invalid(path, "must specify one of exec, http_get or sleep")),
        Some(Action::TcpSocket(_)) => Err(invalid(
            format!("{path}.tcp_socket"),
            "not supported as a lifecycle hook",
        )),
        Some(Action::Grpc(_)) => Err(invalid(
            format!("{path}.grpc"),
            "not supported as a lifecycle hook",
        )),
        Some(Action::Exec(e)) => {
            if e.command.is_empty() {
                Err(invalid(format!("{path}.exec.command"), "must not be empty"))
            } else {
                check_args(&format!("{path}.exec.command"), &e.command)
            }
        }
        Some(Action::Sleep(s)) => {
            if s.seconds < 0 {
                Err(invalid(format!("{path}.sleep.seconds"), "must be >= 0"))
            } else {
                check_range(&format!("{path}.sleep.seconds"), s.seconds, 0, SECONDS_MAX)
            }
        }
        Some(Action::HttpGet(g)) => {
            let gp = format!("{path}.http_get");
            if !(g.scheme.is_empty()
                || g.scheme.eq_ignore_ascii_case("http")
                || g.scheme.eq_ignore_ascii_case("https"))
            {
                return Err(invalid(
                    format!("{gp}.scheme"),
                    format!("must be HTTP or HTTPS; got {}", echo(&g.scheme)),
                ));
            }
            check_token(&format!("{gp}.host"), &g.host, DNS1123_SUBDOMAIN_MAX)?;
            check_token(&format!("{gp}.path"), &g.path, TEXT_MAX)?;
            let headers = format!("{gp}.headers");
            check_count(&headers, g.headers.len(), HTTP_HEADERS_MAX)?;
            for (i, hdr) in g.headers.iter().enumerate() {
                if hdr.name.len() > TEXT_MAX || !is_http_token(&hdr.name) {
                    return Err(invalid(
                        format!("{headers}[{i}].name"),
                        "must be an HTTP token: letters, digits and !#$%&'*+-.^_`|~",
                    ));
                }
                let vp = format!("{headers}[{i}].value");
                check_text(&vp, &hdr.value, TEXT_MAX)?;
                if hdr.value.contains(['\r', '\n']) {
                    return Err(invalid(vp, "must not contain CR or LF"));
                }
            }
            check_port(&format!("{gp}.port"), &g.port, c)
        }
    }
}

#[cfg(test)]
mod tests;
