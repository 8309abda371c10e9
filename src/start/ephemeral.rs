//! StartContainer: one ephemeral (debug) container into a pod's running
//! sandbox, optionally sharing a target container's PID namespace; never
//! restarted. podstart keeps no pod store, so the pod is rebuilt from what
//! the runtime reports:
//! - from PodSandboxStatus: name, namespace, uid, attempt, pod labels
//!   (without the `io.kubernetes.pod.*` / podstart ones), annotations,
//!   runtime handler, host network / PID / IPC (its namespace options), IPs;
//! - from the pod's containers' annotations: the termination grace period;
//! - from the log root: the log directory;
//! - from the request the sandbox stores: the pod's volumes, which the
//!   container may mount by name.
//!
//! Not recoverable, so left at their defaults: the pod's security context
//! (run-as user/group, supplemental groups, seccomp), hostname override,
//! DNS config, sysctls, cgroup parent and restart policy — none of which an
//! ephemeral container's CreateContainer needs beyond what containerd keeps
//! for the sandbox itself.
use std::{collections::HashMap, time::Instant};

use k8s_cri::v1 as cri;

use super::{
    EventSink, StartError, Starter,
    context::{Instances, PodContext},
    events::{finish, micros},
};
use crate::proto::v1::{
    Container, ContainerKind, PodMetadata, PodSpec, PodStarted, StartContainerRequest, StartEvent,
    Step, start_event::Payload,
};
use crate::spec::{InvalidSpec, labels, sandbox as sandbox_spec, stored};
use crate::state::view;

impl Starter {
    /// Carries out a StartContainer request whose container was validated
    /// (`validate_ephemeral`) and whose pod exists, ending with PodStarted
    /// (the one container) or PodFailed.
    pub async fn start_container(&self, req: StartContainerRequest, sink: EventSink) {
        let began = Instant::now();
        let this = self.clone();
        let task_sink = sink.clone();
        let result = tokio::spawn(async move { this.run_start_container(req, &task_sink).await })
            .await
            .unwrap_or_else(|e| Err(StartError::TaskFailed(e.to_string())));
        finish(
            &sink,
            || began.elapsed(),
            result,
            |mut done| {
                done.total_duration_micros = micros(began.elapsed());
                let name = done
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let message = if done.already_running {
                    format!("Ephemeral container {name} already exists; nothing to do")
                } else {
                    format!("Ephemeral container {name} started")
                };
                StartEvent::at(Step::Done, "PodStarted", message).with(Payload::PodStarted(done))
            },
        )
        .await;
    }

    async fn run_start_container(
        &self,
        req: StartContainerRequest,
        sink: &EventSink,
    ) -> Result<PodStarted, StartError> {
        let c = req.container.unwrap_or_default();
        let cri = &self.inner.cri;
        let guard = self.inner.locks.enter(&req.pod_uid).await;
        let filter = view::PodFilter {
            uid: Some(req.pod_uid.clone()),
            ..Default::default()
        };
        let sandbox = view::sandboxes(cri, &filter)
            .await
            .map_err(StartError::Runtime)?
            .into_iter()
            .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .ok_or_else(|| StartError::PodNotFound {
                pod: format!("{} (no running sandbox)", req.pod_uid),
            })?;
        let status = cri
            .pod_sandbox_status(&sandbox.id)
            .await
            .map_err(StartError::SandboxStatus)?;
        let containers = cri
            .list_containers(Some(&sandbox.id), HashMap::new())
            .await
            .map_err(StartError::Runtime)?;
        check_against_pod(&c, &containers)?;

        let mut pod = rebuild_pod(&status, &containers);
        // The pod's volumes, for mounts by name: from the request the
        // sandbox stores (none when it stores none).
        if let Ok(stored) = stored::request_from_annotations(&status.annotations) {
            pod.volumes = stored.pod.map(|p| p.volumes).unwrap_or_default();
        }
        pod.ephemeral_containers = vec![c.clone()];
        let meta = pod.metadata.clone().unwrap_or_default();
        let log_root = &self.inner.config.pod_log_root;
        // One container, pulled at its turn: nothing to pre-pull.
        let no_pre_pull = crate::proto::v1::StartOptions {
            no_pre_pull: true,
            ..Default::default()
        };
        let log_dir =
            sandbox_spec::log_directory(log_root, &meta).map_err(StartError::LogDirectory)?;
        let images = self.pod_images(&pod, &log_dir, req.credentials, &no_pre_pull, sink);
        let ctx = PodContext {
            sandbox_id: sandbox.id.clone(),
            sandbox_config: sandbox_spec::pod_sandbox_config(&pod, &log_dir),
            ips: sandbox_spec::pod_ips(&status, pod.host_network),
            log_dir,
            images: std::sync::Arc::new(images),
            sink: sink.clone(),
            cancel: guard.cancel.clone(),
            node: self.inner.config.node.clone(),
            instances: Instances::default(),
            precreates: std::sync::Arc::default(),
            pod,
        };
        let s = self.start_once(&ctx, &c, ContainerKind::Ephemeral).await?;
        Ok(PodStarted {
            sandbox_id: ctx.sandbox_id,
            ips: ctx.ips,
            containers: vec![s.container],
            timings: s.timings,
            total_duration_micros: 0,
            already_running: s.adopted,
        })
    }
}

/// The name must be new to the pod (or name an ephemeral container started
/// before: then that one is reported, never restarted); the target must be
/// one of the pod's init, sidecar or app containers. Whether the target
/// runs is checked when the container is created.
fn check_against_pod(c: &Container, containers: &[cri::Container]) -> Result<(), InvalidSpec> {
    let kind_of = |name: &str| {
        containers
            .iter()
            .find(|o| o.metadata.as_ref().is_some_and(|m| m.name == name))
            .map(|o| labels::container_kind_from_labels(&o.labels))
    };
    if let Some(kind) = kind_of(&c.name)
        && kind != ContainerKind::Ephemeral
    {
        return Err(InvalidSpec {
            field: "container.name".into(),
            rule: format!("{:?} already names a container of the pod", c.name),
        });
    }
    let target = &c.target_container_name;
    if !target.is_empty() {
        match kind_of(target) {
            Some(ContainerKind::Ephemeral) | None => {
                return Err(InvalidSpec {
                    field: "container.target_container_name".into(),
                    rule: format!(
                        "must name an init, sidecar or app container of the pod; {target:?} is not one"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The pod as far as the runtime can tell it (see the module doc).
fn rebuild_pod(status: &cri::PodSandboxStatus, containers: &[cri::Container]) -> PodSpec {
    let m = status.metadata.clone().unwrap_or_default();
    let own = |k: &str| {
        k == labels::POD_NAME
            || k == labels::POD_NAMESPACE
            || k == labels::POD_UID
            || k == labels::MANAGED
    };
    let ns = status
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .cloned()
        .unwrap_or_default();
    let node = cri::NamespaceMode::Node as i32;
    PodSpec {
        metadata: Some(PodMetadata {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            attempt: m.attempt,
            labels: status
                .labels
                .iter()
                .filter(|(k, _)| !own(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: status.annotations.clone(),
        }),
        host_network: ns.network == node,
        host_pid: ns.pid == node,
        host_ipc: ns.ipc == node,
        runtime_handler: status.runtime_handler.clone(),
        termination_grace_period_seconds: containers
            .iter()
            .find_map(|c| labels::grace_period_from_annotations(&c.annotations)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(name: &str, kind: ContainerKind) -> cri::Container {
        let meta = PodMetadata::default();
        cri::Container {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            labels: labels::container_labels(&meta, name, kind),
            ..Default::default()
        }
    }

    #[test]
    fn name_and_target_are_checked_against_the_running_pod() {
        let pod = [
            existing("app", ContainerKind::App),
            existing("dbg", ContainerKind::Ephemeral),
        ];
        let c = |name: &str, target: &str| Container {
            name: name.into(),
            target_container_name: target.into(),
            ..Default::default()
        };
        assert!(check_against_pod(&c("new", "app"), &pod).is_ok());
        assert!(
            check_against_pod(&c("dbg", ""), &pod).is_ok(),
            "the same ephemeral again"
        );
        assert_eq!(
            check_against_pod(&c("app", ""), &pod).unwrap_err().field,
            "container.name"
        );
        assert_eq!(
            check_against_pod(&c("new", "nope"), &pod)
                .unwrap_err()
                .field,
            "container.target_container_name"
        );
        assert_eq!(
            check_against_pod(&c("new", "dbg"), &pod).unwrap_err().field,
            "container.target_container_name"
        );
    }

    #[test]
    fn the_pod_is_rebuilt_from_the_sandbox_status() {
        let status = cri::PodSandboxStatus {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                attempt: 2,
            }),
            labels: HashMap::from([
                (labels::POD_UID.to_string(), "u1".to_string()),
                ("team".to_string(), "a".to_string()),
            ]),
            runtime_handler: "runc".into(),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                }),
            }),
            ..Default::default()
        };
        let mut app = existing("app", ContainerKind::App);
        app.annotations = HashMap::from([(
            labels::POD_TERMINATION_GRACE_PERIOD.to_string(),
            "7".to_string(),
        )]);
        let pod = rebuild_pod(&status, &[app]);
        let meta = pod.metadata.unwrap();
        assert_eq!((meta.name.as_str(), meta.attempt), ("web", 2));
        assert_eq!(
            meta.labels,
            HashMap::from([("team".to_string(), "a".to_string())])
        );
        assert!(pod.host_pid && !pod.host_network);
        assert_eq!(pod.runtime_handler, "runc");
        assert_eq!(pod.termination_grace_period_seconds, Some(7));
    }
}
