//! Pod spec → CRI translation: what the kubelet's `generatePodSandboxConfig`
//! and `generateContainerConfig` do, for podstart's request types.
//!
//! - [`validate`]: request validation, failures naming the field path;
//! - [`image`]: image reference parsing, the `:latest` default tag, default pull policy;
//! - [`expand`]: `$(VAR)` expansion of env, command and args;
//! - [`fields`]: env vars read from the pod's fields (downward API), resolved and checked;
//! - [`labels`]: labels and annotations on sandboxes and containers, and their readers;
//! - [`sandbox`]: `PodSandboxConfig`, the pod log directory, pod IPs;
//! - [`stored`]: the request a sandbox carries for recovery (no credentials);
//! - [`resources`]: what a pod requests of the node (containers, init containers, pod level);
//! - [`container`]: `ContainerConfig`: resources, OOM score, security context.

pub mod container;
pub mod expand;
pub mod fields;
pub mod image;
pub mod labels;
pub mod resources;
pub mod sandbox;
pub mod stored;
pub mod validate;

pub use container::{ContainerContext, QosClass, container_config, node_memory_bytes};
pub use expand::{container_env, expand, expand_command_and_args};
pub use image::{ImageRef, InvalidImageName, effective_pull_policy, parse_image, with_default_tag};
pub use labels::{
    container_kind_from_labels, grace_period_from_annotations, prestop_from_annotations,
    restart_count_from_annotations,
};
pub use sandbox::{log_directory, log_directory_name, pod_ips, pod_sandbox_config};
pub use validate::{InvalidSpec, validate_container, validate_ephemeral, validate_start_pod};
