//! Protobuf bytes → `StartPodRequest` → validation → the CRI configs the
//! start flow would send (sandbox, then every container with `$(VAR)`
//! expansion), the way `api::start_pod` and `start/` chain them.
//!
//! Oracle: nothing panics; a request that validation accepts converts to
//! configs whose labels and annotations read back to what was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podstart::proto::v1::{ContainerKind, ContainerRestartPolicy, StartPodRequest};
use podstart::spec::container::{ContainerContext, container_config};
use podstart::spec::{image, labels, sandbox, validate};
use prost::Message;
use std::path::Path;

const LOG_ROOT: &str = "/var/log/pods";

/// The node the configs are built for, read once.
static NODE: std::sync::LazyLock<podstart::node::Node> =
    std::sync::LazyLock::new(podstart::node::Node::default);

fuzz_target!(|data: &[u8]| {
    let Ok(req) = StartPodRequest::decode(data) else {
        return;
    };
    if validate::validate_start_pod(&req).is_err() {
        return;
    }
    let pod = req.pod.as_ref().expect("validation requires a pod");
    let log_root = Path::new(LOG_ROOT);
    let node = &*NODE;
    let pod_ips = ["10.88.0.9".to_string(), "fd00::9".to_string()];
    // A validated pod's log directory is one entry right under the log root.
    let log_dir = sandbox::log_directory(log_root, pod.metadata.as_ref().expect("metadata"))
        .expect("a validated pod has a log directory");
    assert_eq!(
        log_dir.parent(),
        Some(log_root),
        "{log_dir:?} escapes {LOG_ROOT}"
    );
    let sandbox_config = sandbox::pod_sandbox_config(pod, &log_dir);
    let meta = sandbox_config.metadata.as_ref().expect("sandbox metadata");
    assert_eq!(
        sandbox_config.labels.get(labels::POD_UID),
        Some(&meta.uid),
        "the sandbox's uid label is the pod's uid",
    );
    assert_eq!(Path::new(&sandbox_config.log_directory), log_dir);

    let lists = [
        (&pod.init_containers, ContainerKind::Init),
        (&pod.containers, ContainerKind::App),
        (&pod.ephemeral_containers, ContainerKind::Ephemeral),
    ];
    for (list, list_kind) in lists {
        for c in list {
            // Init containers with restart policy ALWAYS are sidecars.
            let kind = match list_kind {
                ContainerKind::Init if c.restart_policy() == ContainerRestartPolicy::Always => {
                    ContainerKind::Sidecar
                }
                other => other,
            };
            // The image step: the default tag, then the reference; a bad one
            // is a named error (InvalidImageName), never a panic.
            let reference = image::with_default_tag(&c.image);
            let _ = image::parse_image(&reference);
            let _ = image::effective_pull_policy(c.image_pull_policy(), &c.image);

            for restart_count in [0, u32::MAX] {
                let config = container_config(&ContainerContext {
                    pod,
                    container: c,
                    kind,
                    restart_count,
                    image: &reference,
                    target_container_id: (kind == ContainerKind::Ephemeral
                        && !c.target_container_name.is_empty())
                    .then_some("0123456789abcdef"),
                    mount_sources: &[],
                    node,
                    pod_ips: &pod_ips,
                });
                assert_eq!(
                    labels::container_kind_from_labels(&config.labels),
                    kind,
                    "the kind label reads back",
                );
                assert_eq!(
                    labels::restart_count_from_annotations(&config.annotations),
                    Some(restart_count),
                    "the restart count annotation reads back",
                );
                assert!(
                    labels::grace_period_from_annotations(&config.annotations).is_some(),
                    "the grace period annotation reads back",
                );
                if !c.ports.is_empty() {
                    assert_eq!(
                        labels::ports_from_annotations(&config.annotations).map(|p| p.len()),
                        Some(c.ports.len()),
                        "the ports annotation reads back",
                    );
                }
                assert!(config.envs.len() <= c.env.len());
                assert_eq!(config.command.len(), c.command.len());
                assert_eq!(config.args.len(), c.args.len());
            }
        }
    }
});
