//! Admission at the Kubernetes Pod Security Standards levels: what a pod
//! (or an ephemeral container) may ask of the node, at the level the
//! caller's authorization grants. Pure: runs before any runtime call.
use std::fmt;

use crate::proto::v1::{Container, PodSpec};

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
    let _ = (grant, pod);
    Ok(())
}

/// Checks one ephemeral container started into `pod_namespace` against
/// `grant`.
pub fn admit_container(grant: &Grant, container: &Container) -> Result<(), Refusal> {
    let _ = (grant, container);
    Ok(())
}
