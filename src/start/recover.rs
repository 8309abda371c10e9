//! Recovery when `podstart serve` starts: the pods a previous podstart
//! started are found through their sandboxes' labels, and each is taken up
//! again from the request its sandbox stores (`spec::stored`), as the
//! kubelet resyncs every pod after a restart:
//!
//! - a ready sandbox whose app containers and sidecars all exist (running,
//!   or exited after a start): its restart supervision is resumed;
//! - a ready sandbox with containers missing or created but never started
//!   (the start was cut short): the start flow runs again from the stored
//!   request, adopting what exists, as a re-sent StartPod does;
//! - no ready sandbox (it died, or RunPodSandbox was cut short): the start
//!   flow runs again, which removes the sandbox and creates a new one, as
//!   the kubelet does with a sandbox that is not ready; except for a pod of
//!   restartPolicy Never whose containers ran already, which the kubelet
//!   does not start again either: it is left as it is;
//! - a sandbox without a stored request (made by an older podstart, or for
//!   a request too large to store): left alone, logged once;
//! - a sandbox another podstart started (its `spec::stored::OWNER`, the
//!   pod state root, is not this one's): not looked at.
//!
//! Each pod is worked on under its lock (`state::PodLocks`), so a StartPod
//! waits for its recovery and a StopPod cancels it. Every event goes to the
//! node-wide feed only (no caller waits for it), ending with one
//! `PodRecovered` event per pod saying what was found and done.
use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_cri::v1 as cri;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{
    EventSink, StartError, Starter,
    context::{Instances, PodContext},
    events::finish,
    stop,
};
use crate::cri::CriError;
use crate::proto::v1::{
    ContainerRestartPolicy, PodMetadata, RestartPolicy, StartEvent, StartOptions, StartPodRequest,
    Step, start_event::Payload,
};
use crate::spec::{sandbox as sandbox_spec, stored};
use crate::state::view;

/// Pods recovered at once; the others wait (holding their locks, so a
/// request for them waits too).
const RECOVERY_PARALLEL: usize = 16;

/// What recovery did, pod by pod, counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Complete pods whose supervision was resumed.
    pub supervised: usize,
    /// Pods whose start was run again (finished in their ready sandbox, or
    /// started in a new one) and succeeded.
    pub started: usize,
    /// Pods whose start was run again and failed (PodFailed on the feed).
    pub failed: usize,
    /// Pods left as they are: no stored request, or a finished pod of
    /// restartPolicy Never without a ready sandbox.
    pub left: usize,
    /// Pods a request took over first (a StartPod or StopPod).
    pub taken_over: usize,
}

/// What happened to one pod.
enum Outcome {
    Supervised(String),
    Started(String),
    Failed(String),
    Left(String),
    TakenOver,
}

/// The longest one pod's recovery may take before it is given up (the
/// pod is left as it is for a StartPod to finish).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(300);

impl Starter {
    /// Recovers every pod podstart's labels find on the node (see the
    /// module comment); returns once each was handled. Fails only when the
    /// sandboxes cannot be listed.
    pub async fn recover(&self) -> Result<Recovered, CriError> {
        let began = Instant::now();
        let all = view::sandboxes(&self.inner.cri, &view::PodFilter::default()).await?;
        // Every podstart sandbox on the node, whoever's: from now on a start
        // of a pod none of them carries needs no look-up.
        self.inner.sandboxes.fill(all.iter().filter_map(|s| {
            let m = s.metadata.as_ref()?;
            Some((m.uid.clone(), crate::state::pod_name(&m.namespace, &m.name)))
        }));
        let mut by_uid: HashMap<String, Vec<cri::PodSandbox>> = HashMap::new();
        for s in all {
            let uid = s
                .metadata
                .as_ref()
                .map(|m| m.uid.clone())
                .unwrap_or_default();
            by_uid.entry(uid).or_default().push(s);
        }
        let own = self.inner.config.pod_state_root.display().to_string();
        // Another podstart's pods (another state root) are its own.
        by_uid.retain(|_, sandboxes| {
            sandboxes
                .iter()
                .all(|s| stored::owner(&s.annotations).is_none_or(|o| o == own))
        });
        let places = Arc::new(Semaphore::new(RECOVERY_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        let mut recovered = Recovered::default();
        for (uid, sandboxes) in by_uid {
            let req = match stored_request(&sandboxes) {
                Ok(req) => req,
                Err(e) => {
                    tracing::warn!(
                        pod_uid = %uid,
                        reason = %e,
                        "recovery leaves this pod alone: its sandbox has no usable stored request"
                    );
                    recovered.left += 1;
                    continue;
                }
            };
            // The node's pods count against its allocatable amounts from
            // the start, whether or not they fit (they already run).
            let pod = req.pod.clone().unwrap_or_default();
            self.inner
                .ledger
                .record(&uid, crate::spec::resources::pod_requests(&pod));
            let (this, places) = (self.clone(), places.clone());
            tasks.spawn(async move { this.recover_pod(req, &places).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Outcome::Supervised(_)) => recovered.supervised += 1,
                Ok(Outcome::Started(_)) => recovered.started += 1,
                Ok(Outcome::Failed(_)) => recovered.failed += 1,
                Ok(Outcome::Left(_)) => recovered.left += 1,
                Ok(Outcome::TakenOver) => recovered.taken_over += 1,
                Err(e) => {
                    tracing::error!(error = %e, "a pod's recovery task failed");
                    recovered.failed += 1;
                }
            }
        }
        tracing::info!(
            supervised = recovered.supervised,
            started = recovered.started,
            failed = recovered.failed,
            left = recovered.left,
            taken_over = recovered.taken_over,
            took = ?began.elapsed(),
            "recovery done"
        );
        Ok(recovered)
    }

    /// Recovers one pod under its lock, then reports `PodRecovered`.
    async fn recover_pod(&self, req: StartPodRequest, places: &Semaphore) -> Outcome {
        let meta = req
            .pod
            .as_ref()
            .and_then(|p| p.metadata.clone())
            .unwrap_or_default();
        // The place first: a pod waiting for one holds neither its claim
        // nor its lock, so a StartPod or StopPod of it never waits on the
        // recovery of others.
        let Ok(_place) = places.acquire().await else {
            return Outcome::TakenOver;
        };
        let Ok(_claim) = self
            .inner
            .locks
            .claim(&meta.uid, &meta.namespace, &meta.name)
        else {
            return Outcome::TakenOver;
        };
        let guard = self.inner.locks.enter(&meta.uid).await;
        if guard.cancel.is_cancelled() || self.is_supervised(&meta.uid) {
            return Outcome::TakenOver;
        }
        let sink = EventSink::new(&meta, None, self.bus());
        // A start that cannot finish (an image it cannot pull without the
        // credentials a request would bring) gives its place up in time.
        let token = guard.cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(RECOVERY_DEADLINE).await;
            token.cancel();
        });
        let outcome = match self.recover_steps(req, &sink, &guard).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(format!("recovery failed: {e}")),
        };
        timer.abort();
        let (message, warning) = match &outcome {
            Outcome::TakenOver => return outcome,
            Outcome::Supervised(m) | Outcome::Started(m) | Outcome::Left(m) => (m, false),
            Outcome::Failed(m) => (m, true),
        };
        let event = StartEvent::at(Step::Sandbox, "PodRecovered", message.clone());
        sink.emit(if warning { event.warning() } else { event })
            .await;
        outcome
    }

    /// Looks at the pod as the runtime has it now and acts (module comment).
    async fn recover_steps(
        &self,
        req: StartPodRequest,
        sink: &EventSink,
        guard: &crate::state::PodGuard,
    ) -> Result<Outcome, StartError> {
        let cri = &self.inner.cri;
        let pod = req.pod.clone().unwrap_or_default();
        let meta = pod.metadata.clone().unwrap_or_default();
        let filter = view::PodFilter {
            uid: Some(meta.uid.clone()),
            ..Default::default()
        };
        let sandboxes = view::sandboxes(cri, &filter)
            .await
            .map_err(StartError::Runtime)?;
        if sandboxes.is_empty() {
            // Stopped meanwhile.
            return Ok(Outcome::TakenOver);
        }
        if stop::is_stopping(&self.inner.config.pod_state_root, &meta.uid) {
            // A StopPod began and podstart went away before it ended: the
            // pod is stopped, not brought back.
            return Ok(match self.stop_steps(&meta, None, sink).await {
                Ok(_) => Outcome::Left("Found the pod's stop unfinished; finished it".to_string()),
                Err(e) => Outcome::Failed(format!("finishing the pod's stop failed: {e}")),
            });
        }
        let ready = sandboxes
            .iter()
            .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32);
        let Some(ready) = ready else {
            let ran = self.any_app_ran(&sandboxes, &pod).await?;
            if pod.restart_policy() == RestartPolicy::Never && ran {
                return Ok(Outcome::Left(
                    "Found the pod's sandbox not ready after its containers ran; \
                     restartPolicy Never: left as it is"
                        .to_string(),
                ));
            }
            return Ok(self
                .start_again(
                    req,
                    sink,
                    guard,
                    "Found the pod's sandbox not ready; started the pod in a new sandbox",
                )
                .await);
        };
        let containers = cri
            .list_containers(Some(&ready.id), HashMap::new())
            .await
            .map_err(StartError::Runtime)?;
        let missing = incomplete(&pod, &containers);
        if !missing.is_empty() {
            let found = format!(
                "Found the pod's start unfinished ({}); finished it",
                missing.join(", ")
            );
            return Ok(self.start_again(req, sink, guard, &found).await);
        }
        let ctx = self.context_of(&req, &ready.id, sink, guard).await?;
        self.supervise(&ctx);
        let running = containers
            .iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .count();
        Ok(Outcome::Supervised(format!(
            "Found the pod started ({running} container(s) running); resumed its supervision"
        )))
    }

    /// Runs the start flow from the stored request; its events and its
    /// terminal event go to the feed.
    async fn start_again(
        &self,
        req: StartPodRequest,
        sink: &EventSink,
        guard: &crate::state::PodGuard,
        found: &str,
    ) -> Outcome {
        let began = Instant::now();
        let result = self
            .run_start_steps(req, sink, guard, super::pod::Known::Unlisted)
            .await;
        let outcome = match &result {
            Ok(_) => Outcome::Started(found.to_string()),
            Err(e) => Outcome::Failed(format!("{found}: the start failed: {e}")),
        };
        finish(
            sink,
            || began.elapsed(),
            result,
            |done| {
                let message = format!(
                    "Pod started by recovery: {} container(s)",
                    done.containers.len()
                );
                StartEvent::at(Step::Done, "PodStarted", message).with(Payload::PodStarted(done))
            },
        )
        .await;
        outcome
    }

    /// The context a supervisor needs, as the start flow builds it, for a
    /// pod found started in sandbox `sandbox_id`.
    async fn context_of(
        &self,
        req: &StartPodRequest,
        sandbox_id: &str,
        sink: &EventSink,
        guard: &crate::state::PodGuard,
    ) -> Result<PodContext, StartError> {
        let pod = req.pod.clone().unwrap_or_default();
        let meta: PodMetadata = pod.metadata.clone().unwrap_or_default();
        let log_dir = sandbox_spec::log_directory(&self.inner.config.pod_log_root, &meta)
            .map_err(StartError::LogDirectory)?;
        let status = self
            .inner
            .cri
            .pod_sandbox_status(sandbox_id)
            .await
            .map_err(StartError::SandboxStatus)?;
        // A restart pulls only what it needs, when it needs it: no
        // pre-pulls, and no credentials (none are stored).
        let options = StartOptions {
            no_pre_pull: true,
            ..req.options.unwrap_or_default()
        };
        let images = self.pod_images(&pod, &log_dir, Vec::new(), &options, sink);
        Ok(PodContext {
            sandbox_config: sandbox_spec::pod_sandbox_config(&pod, &log_dir),
            ips: sandbox_spec::pod_ips(&status, pod.host_network),
            sandbox_id: sandbox_id.to_string(),
            log_dir,
            images: Arc::new(images),
            sink: sink.clone(),
            cancel: guard.cancel.clone(),
            node: self.inner.config.node.clone(),
            instances: Instances::default(),
            precreates: std::sync::Arc::default(),
            pod,
        })
    }

    /// Whether an app container of the pod was ever started in one of
    /// `sandboxes`.
    async fn any_app_ran(
        &self,
        sandboxes: &[cri::PodSandbox],
        pod: &crate::proto::v1::PodSpec,
    ) -> Result<bool, StartError> {
        for s in sandboxes {
            let containers = self
                .inner
                .cri
                .list_containers(Some(&s.id), HashMap::new())
                .await
                .map_err(StartError::Runtime)?;
            let ran = containers.iter().any(|c| {
                pod.containers.iter().any(|a| name_of(c) == a.name)
                    && (c.state == cri::ContainerState::ContainerRunning as i32
                        || c.state == cri::ContainerState::ContainerExited as i32)
            });
            if ran {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn is_supervised(&self, uid: &str) -> bool {
        self.inner
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .is_some_and(|t| !t.is_cancelled())
    }
}

/// The stored request of the pod's newest sandbox that has one, a ready
/// sandbox first.
fn stored_request(sandboxes: &[cri::PodSandbox]) -> Result<StartPodRequest, stored::StoredError> {
    let ready = sandboxes
        .iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32);
    let others = sandboxes
        .iter()
        .filter(|s| s.state != cri::PodSandboxState::SandboxReady as i32);
    let mut first_error = stored::StoredError::Absent;
    for s in ready.chain(others) {
        match stored::request_from_annotations(&s.annotations) {
            Ok(req) => return Ok(req),
            Err(e @ stored::StoredError::Damaged(_)) => first_error = e,
            Err(stored::StoredError::Absent) => {}
        }
    }
    Err(first_error)
}

fn name_of(c: &cri::Container) -> &str {
    c.metadata.as_ref().map_or("", |m| m.name.as_str())
}

/// The app containers and sidecars of `pod` whose newest instance in
/// `containers` is missing or was never started (created, unknown), each
/// as `name (what)`; empty when the pod's start finished.
fn incomplete(pod: &crate::proto::v1::PodSpec, containers: &[cri::Container]) -> Vec<String> {
    let sidecars = pod
        .init_containers
        .iter()
        .filter(|c| c.restart_policy() == ContainerRestartPolicy::Always);
    sidecars
        .chain(&pod.containers)
        .filter_map(|c| {
            let newest = containers
                .iter()
                .filter(|k| name_of(k) == c.name)
                .max_by_key(|k| k.metadata.as_ref().map_or(0, |m| m.attempt));
            let what = match newest.map(|k| cri::ContainerState::try_from(k.state)) {
                None => "missing",
                Some(Ok(
                    cri::ContainerState::ContainerRunning | cri::ContainerState::ContainerExited,
                )) => {
                    return None;
                }
                Some(Ok(cri::ContainerState::ContainerCreated)) => "created, not started",
                Some(_) => "state unknown",
            };
            Some(format!("{} {what}", c.name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{Container, PodSpec};

    fn instance(name: &str, attempt: u32, state: cri::ContainerState) -> cri::Container {
        cri::Container {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            state: state as i32,
            ..Default::default()
        }
    }

    fn named(name: &str) -> Container {
        Container {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_start_is_finished_when_every_app_container_and_sidecar_started() {
        let mut sidecar = named("proxy");
        sidecar.set_restart_policy(ContainerRestartPolicy::Always);
        let pod = PodSpec {
            init_containers: vec![named("setup"), sidecar],
            containers: vec![named("a"), named("b"), named("c")],
            ..Default::default()
        };
        use cri::ContainerState::*;
        let all = vec![
            instance("setup", 0, ContainerExited),
            instance("proxy", 0, ContainerRunning),
            instance("a", 0, ContainerRunning),
            instance("b", 0, ContainerExited),
            instance("b", 1, ContainerRunning),
            instance("c", 3, ContainerExited),
        ];
        assert!(incomplete(&pod, &all).is_empty());

        let cases = [
            (
                vec![instance("proxy", 0, ContainerRunning)],
                vec!["a missing", "b missing", "c missing"],
            ),
            (
                vec![
                    instance("proxy", 0, ContainerRunning),
                    instance("a", 0, ContainerRunning),
                    instance("b", 0, ContainerExited),
                    instance("b", 1, ContainerCreated),
                    instance("c", 0, ContainerUnknown),
                ],
                vec!["b created, not started", "c state unknown"],
            ),
            (
                vec![
                    instance("a", 0, ContainerRunning),
                    instance("b", 0, ContainerRunning),
                    instance("c", 0, ContainerRunning),
                ],
                vec!["proxy missing"],
            ),
        ];
        for (found, want) in cases {
            assert_eq!(incomplete(&pod, &found), want, "{found:?}");
        }
    }

    #[test]
    fn the_ready_sandbox_s_request_is_preferred() {
        let req = |name: &str| StartPodRequest {
            pod: Some(PodSpec {
                metadata: Some(PodMetadata {
                    name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox = |r: Option<StartPodRequest>, state: cri::PodSandboxState| cri::PodSandbox {
            annotations: r
                .and_then(|r| stored::request_annotations(&r, "/state"))
                .unwrap_or_default(),
            state: state as i32,
            ..Default::default()
        };
        use cri::PodSandboxState::*;
        let found = stored_request(&[
            sandbox(Some(req("old")), SandboxNotready),
            sandbox(Some(req("ready")), SandboxReady),
        ])
        .unwrap();
        assert_eq!(found.pod.unwrap().metadata.unwrap().name, "ready");
        assert_eq!(
            stored_request(&[sandbox(None, SandboxReady)]),
            Err(stored::StoredError::Absent)
        );
        let found = stored_request(&[
            sandbox(None, SandboxReady),
            sandbox(Some(req("old")), SandboxNotready),
        ])
        .unwrap();
        assert_eq!(found.pod.unwrap().metadata.unwrap().name, "old");
    }
}
