//! Admission at the Kubernetes Pod Security Standards levels: what a pod
//! (or an ephemeral container) may ask of the node, at the level the
//! caller's authorization grants. Pure: runs before any runtime call.
//!
//! The checks are Kubernetes' `k8s.io/pod-security-admission` checks at
//! policy version "latest", named and worded as its refusals are, on
//! podstart's fields; `baseline.rs` and `restricted.rs` hold one function
//! per check, `registry.rs` podstart's own registry check, this file the
//! order they run in and the refusal's message:
//!
//! - privileged: admits everything, save the registry check.
//! - baseline, in Kubernetes' order: `capabilities_baseline`,
//!   `hostNamespaces`, `hostPathVolumes` (mounts' and devices' host paths,
//!   save under the grant's prefixes), `hostPorts` (save the grant's
//!   ranges), `hostProbesAndHostLifecycle`, `privileged`,
//!   `seccompProfile_baseline`, `sysctls`.
//! - restricted: the baseline checks but the three it replaces, then
//!   `allowPrivilegeEscalation`, `capabilities_restricted`,
//!   `restrictedVolumes` (no host path at all), `runAsNonRoot`,
//!   `runAsUser`, `seccompProfile_restricted`.
//! - every level, last: the images' registries against the grant's globs.
//!
//! Kubernetes checks podstart's API cannot express, so has no check for:
//! `appArmorProfile` (no AppArmor field), `seLinuxOptions` (no SELinux
//! options; `Mount.selinux_relabel` only relabels), `procMount` (no
//! procMount field: the runtime's default masked /proc always),
//! `windowsHostProcess` (Linux only), and volume kinds other than host
//! paths in `restrictedVolumes` (podstart has no volume list). No
//! `hostUsers` either, so the user-namespace relaxations of `runAsNonRoot`,
//! `runAsUser` and `procMount` never apply.
//!
//! An ephemeral container checked alone ([`admit_container`]) has no pod
//! fields: the pod-level checks were made when its pod started, and at
//! restricted it must itself set `runAsNonRoot` and a seccomp profile (its
//! pod's cannot be seen here).
use std::fmt;

mod baseline;
mod registry;
mod restricted;
mod subject;
mod words;

use crate::proto::v1::{Container, PodSpec};
use crate::spec::validate::echo;
use subject::{Subject, Violation};

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations; the default.
    Baseline,
    /// Baseline plus current hardening practice.
    Restricted,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        })
    }
}

/// An inclusive range of host ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// What a grant allows beyond its level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowances {
    /// Host paths (mounts and devices) under these absolute prefixes are
    /// allowed at baseline; none otherwise.
    pub host_path_prefixes: Vec<String>,
    /// Host ports in these ranges are allowed at baseline and restricted.
    pub host_ports: Vec<PortRange>,
    /// Image registries (globs on the reference's registry host, as
    /// `registry.example.com` or `*.corp`); empty allows any.
    pub registries: Vec<String>,
}

/// What the caller's matched authorization rule grants a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub level: Level,
    pub allow: Allowances,
    /// The rule that granted it, for refusals: `rule 2` or `the default
    /// policy`.
    pub rule: String,
}

/// A pod or container refused at a grant's level; the message reads as
/// Kubernetes' admission messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub message: String,
}

/// Checks a whole pod against `grant`.
pub fn admit_pod(grant: &Grant, pod: &PodSpec) -> Result<(), Refusal> {
    let meta = pod.metadata.as_ref();
    let name = meta.map_or("", |m| m.name.as_str());
    let namespace = meta.map_or("", |m| m.namespace.as_str());
    let who = format!("pod {}", echo(&format!("{namespace}/{name}")));
    decide(grant, &Subject::pod(pod), &who)
}

/// Checks one ephemeral container, started into a running pod, against
/// `grant`.
pub fn admit_container(grant: &Grant, container: &Container) -> Result<(), Refusal> {
    let who = format!("ephemeral container {}", echo(&container.name));
    decide(grant, &Subject::container(container), &who)
}

/// One check: what it refuses in the subject, given the grant's
/// allowances.
type Check = fn(&Subject<'_>, &Allowances) -> Option<Violation>;

/// The baseline checks, in Kubernetes' order (by check id).
const BASELINE: &[Check] = &[
    baseline::apparmor,
    baseline::capabilities,
    baseline::host_namespaces,
    baseline::host_path_volumes,
    baseline::host_ports,
    baseline::host_probes,
    baseline::privileged,
    baseline::seccomp,
    baseline::sysctls,
];

/// The restricted checks: the baseline ones it keeps, then its own, each
/// group in Kubernetes' order.
const RESTRICTED: &[Check] = &[
    baseline::apparmor,
    baseline::host_namespaces,
    baseline::host_ports,
    baseline::host_probes,
    baseline::privileged,
    baseline::sysctls,
    restricted::allow_privilege_escalation,
    restricted::capabilities,
    restricted::volumes,
    restricted::run_as_non_root,
    restricted::run_as_user,
    restricted::seccomp,
];

/// The checks of `level`, then the registry check every level has.
fn checks(level: Level) -> impl Iterator<Item = Check> {
    let own: &[Check] = match level {
        Level::Privileged => &[],
        Level::Baseline => BASELINE,
        Level::Restricted => RESTRICTED,
    };
    own.iter()
        .copied()
        .chain(std::iter::once(registry::registries as Check))
}

/// Every check of the grant's level on `subject`; one refusal naming all
/// that failed, as Kubernetes words it.
fn decide(grant: &Grant, subject: &Subject<'_>, who: &str) -> Result<(), Refusal> {
    let failed: Vec<String> = checks(grant.level)
        .filter_map(|check| check(subject, &grant.allow))
        .map(|v| format!("{} ({})", v.reason, v.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Refusal {
        message: format!(
            "{who} violates PodSecurity \"{}:latest\" (granted by {}): {}",
            grant.level,
            grant.rule,
            failed.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests;
