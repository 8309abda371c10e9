//! StopPod: PreStop hooks within the grace period, StopContainer with what
//! is left of it (at least 2 s), StopPodSandbox, RemovePodSandbox, and the
//! files podstart made for the pod (termination message files, the log
//! directory's container logs), never more. Works from what the runtime reports (labels and
//! annotations), so it needs no memory of the start.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use super::{
    ContainerRef, EventSink, StartError, Starter,
    events::{finish, micros, short},
    hooks,
    runtime::remove_sandbox,
    termination,
};
use crate::paths::{self, PathError};
use crate::proto::v1::{
    Container, ContainerKind, PodMetadata, PodRef, PodStopped, StartEvent, Step,
    start_event::Payload,
};
use crate::spec::{labels, sandbox as sandbox_spec};
use crate::state::view;

use super::container::{MIN_GRACE, log_number};

impl Starter {
    /// The metadata of the pod `r` names, from its newest sandbox.
    pub async fn find_pod(&self, r: &PodRef) -> Result<PodMetadata, StartError> {
        let found = view::sandboxes(&self.inner.cri, &view::PodFilter::from(r))
            .await
            .map_err(StartError::Runtime)?;
        let describe = || {
            if r.uid.is_empty() {
                format!("{}/{}", r.namespace, r.name)
            } else {
                r.uid.clone()
            }
        };
        let meta = found
            .first()
            .and_then(|s| s.metadata.clone())
            .ok_or_else(|| StartError::PodNotFound { pod: describe() })?;
        Ok(PodMetadata {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            attempt: meta.attempt,
            ..Default::default()
        })
    }

    /// Stops and removes every sandbox of the pod, emitting its events and
    /// exactly one PodStopped or PodFailed.
    pub async fn stop_pod(&self, pod: PodMetadata, grace: Option<i64>, sink: EventSink) {
        let began = Instant::now();
        let result = self.run_stop(&pod, grace, &sink).await;
        finish(
            &sink,
            || began.elapsed(),
            result,
            |mut stopped| {
                stopped.total_duration_micros = micros(began.elapsed());
                StartEvent::at(
                    Step::Done,
                    "PodStopped",
                    format!(
                        "Pod stopped and removed ({} container(s) stopped)",
                        stopped.containers_stopped
                    ),
                )
                .with(Payload::PodStopped(stopped))
            },
        )
        .await;
    }

    async fn run_stop(
        &self,
        pod: &PodMetadata,
        grace: Option<i64>,
        sink: &EventSink,
    ) -> Result<PodStopped, StartError> {
        // A start in progress gives way: it is cancelled between steps; so
        // does the pod's supervisor.
        self.stop_supervising(&pod.uid);
        self.inner.locks.cancel(&pod.uid);
        let _guard = self.inner.locks.enter(&pod.uid).await;
        // A start that ended while this stop waited may have left a
        // supervisor behind.
        self.stop_supervising(&pod.uid);
        // A pod being stopped is not ready; once stopped, it is forgotten.
        self.inner.readiness.clear(&pod.uid);
        let stopped = self.stop_steps(pod, grace, sink).await;
        if stopped.is_ok() {
            self.inner.readiness.forget(&pod.uid);
        }
        stopped
    }

    /// The stop itself, under the pod's lock. Marked on disk from its
    /// first step to its last, so that a podstart that dies in between
    /// finishes the stop when it comes back rather than restarting the pod
    /// (`recover.rs`).
    // Long: the kubelet's stop order per sandbox, then the pod's state and
    // log directories, kept in the order their events go out.
    pub(super) async fn stop_steps(
        &self,
        pod: &PodMetadata,
        grace: Option<i64>,
        sink: &EventSink,
    ) -> Result<PodStopped, StartError> {
        let state_root = &self.inner.config.pod_state_root;
        if let Err(e) = mark_stopping(state_root, &pod.uid) {
            tracing::warn!(error = %e, "marking the pod as being stopped");
        }
        let cri = &self.inner.cri;
        let filter = view::PodFilter {
            uid: Some(pod.uid.clone()),
            ..Default::default()
        };
        let sandboxes = view::sandboxes(cri, &filter)
            .await
            .map_err(StartError::Stop)?;
        let mut stopped = PodStopped::default();
        for sandbox in &sandboxes {
            let containers = cri
                .list_containers(Some(&sandbox.id), HashMap::new())
                .await
                .map_err(StartError::Stop)?;
            let pod_ip = if sandbox.state == cri::PodSandboxState::SandboxReady as i32 {
                cri.pod_sandbox_status(&sandbox.id)
                    .await
                    .ok()
                    .and_then(|s| s.network)
                    .map(|n| n.ip)
                    .filter(|ip| !ip.is_empty())
            } else {
                None
            };
            let running: Vec<_> = containers
                .iter()
                .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
                .collect();
            // Containers stop in parallel, as the kubelet's
            // killPodWithSyncResult, each sidecar waiting its turn.
            let order = TerminationOrder::new(&running);
            let results = futures::future::join_all(
                running
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.stop_one(c, grace, pod_ip.as_deref(), sink, order.turn(i))),
            )
            .await;
            for r in results {
                r?;
                stopped.containers_stopped += 1;
            }
            let t = Instant::now();
            remove_sandbox(cri, &sandbox.id)
                .await
                .map_err(StartError::Stop)?;
            sink.emit(
                StartEvent::at(
                    Step::StopSandbox,
                    "SandboxRemoved",
                    format!("Stopped and removed pod sandbox {}", short(&sandbox.id)),
                )
                .took(t.elapsed()),
            )
            .await;
            stopped.sandbox_id.clone_from(&sandbox.id);
        }

        // Every sandbox of the uid is gone (the pod's lock is held).
        self.inner.sandboxes.forget(&pod.uid);
        // The pod's volumes, once nothing runs with them.
        self.tear_down_volumes(&pod.uid, sink).await;
        // Its sandboxes are gone: the pod no longer counts on the node.
        self.inner.ledger.release(&pod.uid);

        // Only what podstart made goes: the termination message files and
        // their directories, then the pod's container logs (`<name>/N.log`,
        // rotated `N.log.*`) and their directories; anything else stays.
        clear_stopping(state_root, &pod.uid);
        match termination::remove_pod_dir(state_root, &pod.uid) {
            Ok(removed) if !removed.kept.is_empty() => tracing::warn!(
                kept = ?removed.kept,
                "the pod's state directory holds files podstart did not make; they stay"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing the pod's state directory"),
        }

        let log_root = &self.inner.config.pod_log_root;
        let log_name = sandbox_spec::log_directory_name(pod);
        let removed = match paths::remove_layout(
            log_root,
            &[&log_name],
            &[paths::is_plain_name, |n| log_number(n).is_some()],
        ) {
            Ok(removed) => removed,
            // A name no directory under the root can have: podstart made
            // none for it, so there is nothing to remove.
            Err(e) if e.is_request_fault() => {
                tracing::warn!(error = %e, "the pod's log directory has no place under the log root");
                paths::Removed::default()
            }
            Err(e) => return Err(StartError::RemoveLogDirectory(e)),
        };
        let log_dir = log_root.join(&log_name);
        if removed.gone() {
            sink.emit(StartEvent::at(
                Step::Remove,
                "LogsRemoved",
                format!("Removed pod log directory {}", log_dir.display()),
            ))
            .await;
        } else if let Some(first) = removed.kept.first() {
            sink.emit(
                StartEvent::at(
                    Step::Remove,
                    "LogsKept",
                    format!(
                        "Kept pod log directory {}: {} entr{} podstart did not make, \
                         such as {}",
                        log_dir.display(),
                        removed.kept.len(),
                        if removed.kept.len() == 1 { "y" } else { "ies" },
                        first.display()
                    ),
                )
                .warning(),
            )
            .await;
        }
        Ok(stopped)
    }

    /// PreStop (bounded by the grace period), then StopContainer with the
    /// remaining grace, at least 2 s.
    async fn stop_one(
        &self,
        c: &cri::Container,
        grace_override: Option<i64>,
        pod_ip: Option<&str>,
        sink: &EventSink,
        turn: Turn<'_>,
    ) -> Result<(), StartError> {
        // Others waiting on this container go on once it is stopped, or
        // once its stop failed.
        let _done = turn.done.clone().drop_guard();
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let cref = ContainerRef {
            name: name.clone(),
            kind: labels::container_kind_from_labels(&c.labels),
        };
        let grace_secs = grace_override
            .or_else(|| labels::grace_period_from_annotations(&c.annotations))
            .unwrap_or(labels::DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
            .max(0);
        let grace = Duration::from_secs(grace_secs as u64);
        let began = Instant::now();

        self.pre_stop(c, &cref, grace_secs, pod_ip, sink, began)
            .await;
        if grace_secs > 0 {
            let left = grace.saturating_sub(began.elapsed());
            let _ = tokio::time::timeout(left, turn.wait()).await;
        }

        let remaining = grace.saturating_sub(began.elapsed()).max(MIN_GRACE);
        let t = Instant::now();
        self.inner
            .cri
            .stop_container(&c.id, remaining)
            .await
            .map_err(StartError::Stop)?;
        sink.emit(
            StartEvent::at(
                Step::StopContainer,
                "Killing",
                format!("Stopping container {name}"),
            )
            .of(&cref)
            .took(t.elapsed()),
        )
        .await;
        Ok(())
    }

    /// The container's PreStop hook, if it has one and the grace period is
    /// not zero (as the kubelet), bounded by the grace period; reports how
    /// it went. Its failure does not stop the stop.
    // Long: the hook's three outcomes (done, failed, out of time) each
    // report differently.
    async fn pre_stop(
        &self,
        c: &cri::Container,
        cref: &ContainerRef,
        grace_secs: i64,
        pod_ip: Option<&str>,
        sink: &EventSink,
        began: Instant,
    ) {
        let Some(handler) =
            labels::prestop_from_annotations(&c.annotations).filter(|_| grace_secs > 0)
        else {
            return;
        };
        let name = cref.name.clone();
        let grace = Duration::from_secs(grace_secs as u64);
        let cancel = CancellationToken::new();
        // Named ports of an HTTP hook resolve through the ports
        // annotation, as the kubelet restores them.
        let spec = Container {
            name: name.clone(),
            ports: labels::ports_from_annotations(&c.annotations).unwrap_or_default(),
            ..Default::default()
        };
        let run = hooks::HookRun {
            cri: &self.inner.cri,
            container_id: &c.id,
            container: &spec,
            pod_ip,
            timeout: grace,
            cancel: &cancel,
        };
        let outcome = tokio::time::timeout(grace.max(MIN_GRACE), run.run(&handler)).await;
        match outcome {
            Ok(Ok(outcome)) => {
                if let Some(host) = outcome.http_fallback {
                    sink.emit(
                        StartEvent::at(
                            Step::PreStop,
                            "LifecycleHTTPFallback",
                            format!(
                                "request to HTTPS lifecycle hook {host} got HTTP response, \
                                 retry with HTTP succeeded"
                            ),
                        )
                        .of(cref)
                        .warning(),
                    )
                    .await;
                }
                sink.emit(
                    StartEvent::at(
                        Step::PreStop,
                        "PreStopHookSucceeded",
                        format!("PreStop hook of container {name} completed"),
                    )
                    .of(cref)
                    .took(began.elapsed()),
                )
                .await;
            }
            Ok(Err(e)) => {
                tracing::info!(container = %name, error = %e, "PreStop hook failed");
                sink.emit(
                    StartEvent::at(Step::PreStop, "FailedPreStopHook", "PreStopHook failed")
                        .of(cref)
                        .took(began.elapsed())
                        .warning(),
                )
                .await;
            }
            Err(_) => {
                cancel.cancel();
                sink.emit(
                    StartEvent::at(
                        Step::PreStop,
                        "FailedPreStopHook",
                        format!(
                            "PreStop hook did not finish within the grace period of {grace_secs}s"
                        ),
                    )
                    .of(cref)
                    .took(began.elapsed())
                    .warning(),
                )
                .await;
            }
        }
    }
}

/// The order a pod's running containers stop in, as the kubelet's
/// `terminationOrdering` (pkg/kubelet/kuberuntime/kuberuntime_termination_order.go,
/// Kubernetes v1.29 and later, with sidecar containers): every container but
/// the sidecars stops at once; each sidecar, after its PreStop hook, waits
/// (within the grace period) for every other container and for every sidecar
/// declared after it to be stopped, so sidecars stop last, in the reverse
/// order of their declaration.
struct TerminationOrder {
    /// Cancelled once the container of the same index is stopped.
    done: Vec<CancellationToken>,
    /// The indices each container waits for.
    waits_for: Vec<Vec<usize>>,
}

/// One container's place in a [`TerminationOrder`].
struct Turn<'a> {
    done: &'a CancellationToken,
    waits_for: Vec<&'a CancellationToken>,
}

impl Turn<'_> {
    /// Until every container this one waits for is stopped.
    async fn wait(&self) {
        for t in &self.waits_for {
            t.cancelled().await;
        }
    }
}

impl TerminationOrder {
    fn new(running: &[&cri::Container]) -> TerminationOrder {
        // A sidecar's declaration position: its recorded init index, else
        // (containers made before the index was recorded) its creation time.
        let sidecar_rank = |c: &cri::Container| {
            (labels::container_kind_from_labels(&c.labels) == ContainerKind::Sidecar).then(|| {
                (
                    labels::init_index_from_annotations(&c.annotations).unwrap_or(usize::MAX),
                    c.created_at,
                )
            })
        };
        let ranks: Vec<_> = running.iter().map(|c| sidecar_rank(c)).collect();
        let waits_for = ranks
            .iter()
            .map(|mine| match mine {
                None => Vec::new(),
                Some(mine) => ranks
                    .iter()
                    .enumerate()
                    .filter(|(_, other)| other.as_ref().is_none_or(|o| o > mine))
                    .map(|(j, _)| j)
                    .collect(),
            })
            .collect();
        TerminationOrder {
            done: running.iter().map(|_| CancellationToken::new()).collect(),
            waits_for,
        }
    }

    fn turn(&self, i: usize) -> Turn<'_> {
        Turn {
            done: &self.done[i],
            waits_for: self.waits_for[i].iter().map(|&j| &self.done[j]).collect(),
        }
    }
}

/// The file that says a pod's stop began and has not finished:
/// `<state root>/<uid>/stopping`.
const STOPPING: &str = "stopping";

fn stopping_marker(state_root: &Path, uid: &str) -> Result<PathBuf, PathError> {
    paths::under(state_root, &[uid, STOPPING])
}

fn mark_stopping(state_root: &Path, uid: &str) -> Result<(), PathError> {
    let dir = paths::create_dirs(state_root, &[uid])?;
    let file = dir.join(STOPPING);
    std::fs::write(&file, b"").map_err(|source| PathError::Io { path: file, source })
}

/// Forgets an unfinished stop: a StartPod of the uid came after it.
pub(super) fn clear_stopping(state_root: &Path, uid: &str) {
    if let Ok(marker) = stopping_marker(state_root, uid) {
        let _ = std::fs::remove_file(marker);
    }
}

/// Whether a stop of the pod began and did not finish.
pub(super) fn is_stopping(state_root: &Path, uid: &str) -> bool {
    stopping_marker(state_root, uid).is_ok_and(|m| m.is_file())
}
