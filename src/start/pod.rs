//! The pod-level flow: find or create the sandbox, then ephemeral, init
//! (one at a time, each to exit 0; sidecars started and left running) and
//! app containers, in the kubelet's order. Ends every request with exactly
//! one terminal event.
use std::{collections::HashMap, path::PathBuf, time::Duration};

use k8s_cri::v1 as cri;
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    ContainerRef, EventSink, StartError, Starter, adopt,
    context::{Instances, PodContext, Started},
    events::{exit_event, finish, micros, short},
    restart::{self, AfterExit},
    runtime::remove_sandbox,
    stop, termination,
};
use crate::duration;
use crate::paths;
use crate::proto::v1::{
    AppStartMode, Container, ContainerKind, ContainerRestartPolicy, PodSpec, PodStarted,
    SandboxInfo, StartEvent, StartOptions, StartPodRequest, Step, StepTiming, start_event::Payload,
};
use crate::spec::{resources, sandbox as sandbox_spec, stored};
use crate::state::view;

/// What a start knows of its pod's sandboxes before the sandbox step.
pub(super) enum Known {
    /// Nothing: the sandbox step lists them.
    Unlisted,
    /// As the runtime listed them, nothing having changed them since.
    Listed(Vec<cri::PodSandbox>),
    /// The node's index says there are none (`state::sandboxes`).
    NoneOnNode,
}

struct Sandbox {
    id: String,
    config: cri::PodSandboxConfig,
    ips: Vec<String>,
    log_dir: PathBuf,
    adopted: bool,
}

impl Starter {
    /// Carries out a validated StartPodRequest, emitting its events and, at
    /// the end, exactly one PodStarted or PodFailed.
    /// `deadline` (the caller's grpc-timeout) bounds the whole start: when
    /// it passes, the start stops at the next step boundary (a create in
    /// flight is not cut off) and fails with DEADLINE_EXCEEDED.
    pub async fn start_pod(
        &self,
        req: StartPodRequest,
        sink: EventSink,
        deadline: Option<Duration>,
    ) {
        let metrics = &self.inner.metrics;
        let _in_flight = metrics.start_in_flight();
        metrics.pod_start_attempted();
        let began = Instant::now();
        let this = self.clone();
        let task_sink = sink.clone();
        let result = tokio::spawn(
            async move { this.run_start(req, &task_sink, deadline).await }.in_current_span(),
        )
        .await
        .unwrap_or_else(|e| Err(StartError::TaskFailed(e.to_string())));
        if let Err(e) = &result {
            metrics.pod_start_failed(e.reason());
        }
        finish(
            &sink,
            || began.elapsed(),
            result,
            |mut done| {
                metrics.pod_started(began.elapsed());
                done.total_duration_micros = micros(began.elapsed());
                let message = if done.already_running {
                    "Pod already running; nothing to do".to_string()
                } else {
                    format!(
                        "Pod started: {} container(s) in {}",
                        done.containers.len(),
                        duration::go(duration::truncate(
                            began.elapsed(),
                            Duration::from_millis(1)
                        ))
                    )
                };
                StartEvent::at(Step::Done, "PodStarted", message).with(Payload::PodStarted(done))
            },
        )
        .await;
    }

    async fn run_start(
        &self,
        req: StartPodRequest,
        sink: &EventSink,
        deadline: Option<Duration>,
    ) -> Result<PodStarted, StartError> {
        let began = Instant::now();
        let pod = req.pod.clone().unwrap_or_default();
        let meta = pod.metadata.clone().unwrap_or_default();
        // Every path made from the request is inside its root, or nothing
        // is made at all.
        termination::pod_dir(&self.inner.config.pod_state_root, &meta.uid)
            .map_err(StartError::StateDirectory)?;
        sandbox_spec::log_directory(&self.inner.config.pod_log_root, &meta)
            .map_err(StartError::LogDirectory)?;
        crate::volumes::layout::pod_dir(&self.inner.config.pod_volume_root, &meta.uid)
            .map_err(StartError::StateDirectory)?;
        // The uid names one pod: refused before anything is made (or a
        // supervisor stopped) when it or the name is another pod's, in
        // flight or on the node. The claim is held to the end of the start.
        let _claim = self
            .inner
            .locks
            .claim(&meta.uid, &meta.namespace, &meta.name)
            .map_err(StartError::PodIdentity)?;
        // The node's admission of what the pod requests, before any call
        // to the runtime; held from here (an identity conflict below gives
        // it back) until the pod is stopped.
        let admission = self
            .inner
            .ledger
            .admit(
                &meta.uid,
                resources::pod_requests(&pod),
                self.inner.config.node.allocatable,
            )
            .map_err(StartError::OutOfResource)?;
        // The uid's sandboxes, listed ahead of the lock: still what the
        // sandbox step needs unless another request held the lock since.
        // Not listed at all when the node certainly has none of the uid
        // and none of the name: nothing to conflict with or adopt.
        let ticket = self.inner.locks.ticket(&meta.uid);
        let name = crate::state::pod_name(&meta.namespace, &meta.name);
        let listed = if self.inner.sandboxes.certainly_none(&meta.uid, &name) {
            None
        } else {
            let (conflict, listed) =
                view::identity_conflict(&self.inner.cri, &meta.uid, &meta.namespace, &meta.name)
                    .await
                    .map_err(StartError::Runtime)?;
            if let Some(conflict) = conflict {
                return Err(StartError::PodIdentity(conflict));
            }
            Some(listed)
        };
        admission.confirm();
        // This start takes over from the pod's supervisor, if it has one.
        self.stop_supervising(&meta.uid);
        let guard = self.inner.locks.enter(&meta.uid).await;
        let listed = match listed {
            // Asked again under the lock: a request that held it since may
            // have changed the answer.
            None if self.inner.sandboxes.certainly_none(&meta.uid, &name) => Known::NoneOnNode,
            Some(listed) if guard.undisturbed_since(&ticket) => Known::Listed(listed),
            _ => Known::Unlisted,
        };
        drop(ticket);
        // This start supersedes a stop that never finished.
        stop::clear_stopping(&self.inner.config.pod_state_root, &meta.uid);
        let Some(after) = deadline else {
            return self.run_start_steps(req, sink, &guard, listed).await;
        };
        let token = guard.cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(began + after).await;
            token.cancel();
        });
        let result = self.run_start_steps(req, sink, &guard, listed).await;
        timer.abort();
        match result {
            Err(StartError::Cancelled { .. }) if began.elapsed() >= after => {
                Err(StartError::DeadlineExceeded { after })
            }
            other => other,
        }
    }

    // Long: the kubelet's SyncPod order (sandbox, ephemeral, init, app,
    // then the SLI) is the point of this function; split, it hides.
    /// `listed`: what the start knows of the pod's sandboxes.
    pub(super) async fn run_start_steps(
        &self,
        req: StartPodRequest,
        sink: &EventSink,
        guard: &crate::state::PodGuard,
        listed: Known,
    ) -> Result<PodStarted, StartError> {
        let started_at = Instant::now();
        // What recovery after a restart needs, without the credentials.
        let stored = stored_request(&req, &self.inner.config.pod_state_root);
        let pod = req.pod.unwrap_or_default();
        let mut timings = Vec::new();
        let options = req.options.unwrap_or_default();
        let meta = pod.metadata.clone().unwrap_or_default();
        let log_dir = sandbox_spec::log_directory(&self.inner.config.pod_log_root, &meta)
            .map_err(StartError::LogDirectory)?;
        let images = self.pod_images(&pod, &log_dir, req.credentials, &options, sink);

        let sandbox = self
            .ensure_sandbox(&pod, log_dir, &stored, listed, sink, &mut timings)
            .instrument(tracing::info_span!("sandbox"))
            .await?;
        // Volumes before any container that mounts them is created.
        if let Err(e) = self.set_up_volumes(&pod, sink).await {
            if !sandbox.adopted {
                // Nothing ran with them: what was made goes.
                self.tear_down_volumes(&meta.uid, sink).await;
            }
            return Err(e);
        }
        let ctx = PodContext {
            pod,
            sandbox_id: sandbox.id.clone(),
            sandbox_config: sandbox.config,
            ips: sandbox.ips.clone(),
            log_dir: sandbox.log_dir,
            images: std::sync::Arc::new(images),
            sink: sink.clone(),
            cancel: guard.cancel.clone(),
            node: self.inner.config.node.clone(),
            instances: if sandbox.adopted {
                Instances::default()
            } else {
                Instances::of_new_sandbox()
            },
            precreates: std::sync::Arc::default(),
        };
        self.inner.readiness.track(&meta.uid, &ctx.pod);
        self.create_ahead(&ctx, &options);
        let result = self
            .containers_in_order(&ctx, &options, timings, sandbox.adopted, started_at)
            .await;
        // Containers made ahead whose turn never came (the pod failed
        // first) go.
        ctx.precreates.discard(&self.inner.cri).await;
        result
    }

    /// The pod's containers once its sandbox and volumes are ready:
    /// ephemeral, init (one at a time, to exit 0), then app containers;
    /// then the SLI and the supervisor. `adopted`: the sandbox was found
    /// running.
    // Long: the kubelet's SyncPod order is the point of this function.
    async fn containers_in_order(
        &self,
        ctx: &PodContext,
        options: &StartOptions,
        mut timings: Vec<StepTiming>,
        adopted: bool,
        started_at: Instant,
    ) -> Result<PodStarted, StartError> {
        let mut started = Vec::new();
        let mut all_adopted = adopted;

        // Ephemeral containers: started first, never restarted, and their
        // failures (reported on the stream) do not fail the pod.
        for c in &ctx.pod.ephemeral_containers {
            ctx.check_cancelled()?;
            if let Ok(s) = self.start_once(ctx, c, ContainerKind::Ephemeral).await {
                all_adopted &= s.adopted;
                timings.extend(s.timings);
                started.push(s.container);
            }
        }

        let init_began = Instant::now();
        for c in &ctx.pod.init_containers {
            ctx.check_cancelled()?;
            let s = if c.restart_policy() == ContainerRestartPolicy::Always {
                self.run_sidecar(ctx, c).await?
            } else {
                self.run_init_container(ctx, c).await?
            };
            all_adopted &= s.adopted;
            timings.extend(s.timings);
            started.push(s.container);
        }

        let init_phase = init_began.elapsed();
        ctx.check_cancelled()?;
        let results = match options.app_start() {
            AppStartMode::Parallel => {
                futures::future::join_all(
                    ctx.pod
                        .containers
                        .iter()
                        .map(|c| self.start_once(ctx, c, ContainerKind::App)),
                )
                .await
            }
            AppStartMode::Sequential | AppStartMode::Unspecified => {
                let mut results = Vec::new();
                for c in &ctx.pod.containers {
                    results.push(self.start_once(ctx, c, ContainerKind::App).await);
                }
                results
            }
        };
        let total = results.len();
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok(s) => {
                    all_adopted &= s.adopted;
                    timings.extend(s.timings);
                    started.push(s.container);
                }
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            let failed = failures.len();
            return Err(StartError::AppContainers {
                failed,
                total,
                first: Box::new(failures.swap_remove(0)),
            });
        }

        // The kubelet's SLI: the start without image pulls and init
        // containers (app containers' pulls happen after the init phase).
        let is_init = |name: &str| ctx.pod.init_containers.iter().any(|c| c.name == name);
        let pulls: Duration = timings
            .iter()
            .filter(|t| t.step() == Step::Image && !is_init(&t.container_name))
            .map(|t| Duration::from_micros(t.duration_micros))
            .sum();
        if !all_adopted {
            let sli = started_at.elapsed().saturating_sub(init_phase + pulls);
            self.inner.metrics.pod_started_sli(sli);
        }
        self.supervise(ctx);
        Ok(PodStarted {
            sandbox_id: ctx.sandbox_id.clone(),
            ips: ctx.ips.clone(),
            containers: started,
            timings,
            total_duration_micros: 0,
            already_running: all_adopted,
        })
    }

    /// Adopts the pod's ready sandbox, or removes leftovers (a failed or
    /// stopped sandbox keeps its name reserved) and creates a new one,
    /// carrying `stored` (the request for recovery) among its annotations.
    /// The pod's sandboxes are listed unless `listed` knows them already;
    /// when the node's index said there were none and the runtime says the
    /// name is taken, they are listed after all (made by another process).
    async fn ensure_sandbox(
        &self,
        pod: &PodSpec,
        log_dir: PathBuf,
        stored: &HashMap<String, String>,
        mut listed: Known,
        sink: &EventSink,
        timings: &mut Vec<StepTiming>,
    ) -> Result<Sandbox, StartError> {
        let started = Instant::now();
        // Two rounds at most: only the index's "none" comes back empty.
        loop {
            let made = self
                .sandbox_once(pod, &log_dir, stored, listed, sink, timings, started)
                .await?;
            if let Some(sandbox) = made {
                return Ok(sandbox);
            }
            tracing::warn!(
                pod_uid = %pod.metadata.as_ref().map(|m| m.uid.as_str()).unwrap_or_default(),
                "the pod's sandbox name is taken by a sandbox this podstart did not know of; listing"
            );
            listed = Known::Unlisted;
        }
    }

    /// One try of [`Self::ensure_sandbox`]: `None` when RunPodSandbox found
    /// the name taken while `listed` was the index's "none".
    // Long-argument: the sandbox step's inputs, passed through unchanged.
    #[allow(clippy::too_many_arguments)]
    async fn sandbox_once(
        &self,
        pod: &PodSpec,
        log_dir: &std::path::Path,
        stored: &HashMap<String, String>,
        listed: Known,
        sink: &EventSink,
        timings: &mut Vec<StepTiming>,
        started: Instant,
    ) -> Result<Option<Sandbox>, StartError> {
        let cri = &self.inner.cri;
        let meta = pod.metadata.clone().unwrap_or_default();
        let log_dir = log_dir.to_path_buf();
        let config = sandbox_spec::pod_sandbox_config(pod, &log_dir);

        let filter = view::PodFilter {
            uid: Some(meta.uid.clone()),
            ..Default::default()
        };
        let from_index = matches!(listed, Known::NoneOnNode);
        let existing = match listed {
            Known::Listed(listed) => listed,
            Known::NoneOnNode => Vec::new(),
            Known::Unlisted => view::sandboxes(cri, &filter)
                .await
                .map_err(StartError::CreateSandbox)?,
        };
        let ready = existing.iter().find(|s| {
            s.state == cri::PodSandboxState::SandboxReady as i32
                && s.metadata
                    .as_ref()
                    .is_some_and(|m| m.attempt == meta.attempt)
        });
        if let Some(ready) = ready {
            let ips = self.sandbox_ips(&ready.id, pod).await?;
            sink.emit(
                StartEvent::at(
                    Step::Sandbox,
                    "SandboxReady",
                    format!(
                        "Pod sandbox {} already running; continuing",
                        short(&ready.id)
                    ),
                )
                .took(started.elapsed())
                .with(Payload::Sandbox(SandboxInfo {
                    sandbox_id: ready.id.clone(),
                    ips: ips.clone(),
                    log_directory: log_dir.display().to_string(),
                })),
            )
            .await;
            return Ok(Some(Sandbox {
                id: ready.id.clone(),
                config,
                ips,
                log_dir,
                adopted: true,
            }));
        }
        if !existing.is_empty() {
            sink.emit(StartEvent::at(
                Step::Sandbox,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            ))
            .await;
            for old in &existing {
                remove_sandbox(cri, &old.id)
                    .await
                    .map_err(StartError::CreateSandbox)?;
            }
        }

        // Only RunPodSandbox carries the stored request (`create_sandbox`
        // takes it out again): the config containers are created with
        // stays small.
        let mut annotated = config;
        annotated.annotations.extend(stored.clone());
        self.create_sandbox(pod, annotated, log_dir, from_index, sink, timings, started)
            .await
    }

    /// Creates the pod's sandbox (and its log directory), reporting
    /// SandboxCreated, or FailedCreatePodSandBox after cleaning up what the
    /// failed RunPodSandbox left. `None`, with nothing reported or cleaned:
    /// `from_index` (nothing was listed) and the runtime has the name taken.
    // Long-argument: the sandbox step's inputs, passed through unchanged.
    #[allow(clippy::too_many_arguments)]
    async fn create_sandbox(
        &self,
        pod: &PodSpec,
        mut config: cri::PodSandboxConfig,
        log_dir: PathBuf,
        from_index: bool,
        sink: &EventSink,
        timings: &mut Vec<StepTiming>,
        started: Instant,
    ) -> Result<Option<Sandbox>, StartError> {
        let cri = &self.inner.cri;
        let filter = view::PodFilter {
            uid: Some(
                pod.metadata
                    .as_ref()
                    .map(|m| m.uid.clone())
                    .unwrap_or_default(),
            ),
            ..Default::default()
        };
        let meta = pod.metadata.clone().unwrap_or_default();
        paths::create_dirs(
            &self.inner.config.pod_log_root,
            &[&sandbox_spec::log_directory_name(&meta)],
        )
        .map_err(StartError::LogDirectory)?;
        // In the node's index before the runtime can have it.
        self.inner.sandboxes.reserve(
            &meta.uid,
            &crate::state::pod_name(&meta.namespace, &meta.name),
        );
        let id = match self.run_sandbox(pod, &config, from_index).await {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(None),
            Err(e) => {
                // A failed RunPodSandbox can leave a NOTREADY sandbox that
                // keeps the name reserved: clean it so a later start works.
                if let Ok(left) = view::sandboxes(cri, &filter).await {
                    let mut cleaned = true;
                    for s in left {
                        if let Err(err) = remove_sandbox(cri, &s.id).await {
                            tracing::warn!(sandbox = %s.id, error = %err, "cleaning a failed sandbox");
                            cleaned = false;
                        }
                    }
                    // Nothing of the uid is left (its lock is held): the
                    // index need not keep it, however many such starts come.
                    if cleaned {
                        self.inner.sandboxes.forget(&meta.uid);
                    }
                }
                // The start ends without a sandbox: no volume stays.
                self.tear_down_volumes(&meta.uid, sink).await;
                let err = StartError::CreateSandbox(e);
                sink.emit(
                    StartEvent::at(Step::Sandbox, "FailedCreatePodSandBox", err.to_string())
                        .took(started.elapsed())
                        .warning(),
                )
                .await;
                return Err(err);
            }
        };
        stored::remove_from(&mut config.annotations);
        let ips = self.sandbox_ips(&id, pod).await?;
        let took = started.elapsed();
        timings.push(StepTiming {
            container_name: String::new(),
            step: Step::Sandbox as i32,
            duration_micros: micros(took),
        });
        let ip_text = if ips.is_empty() {
            String::new()
        } else {
            format!(" with IP {}", ips.join(", "))
        };
        sink.emit(
            StartEvent::at(
                Step::Sandbox,
                "SandboxCreated",
                format!("Created pod sandbox {}{ip_text}", short(&id)),
            )
            .took(took)
            .with(Payload::Sandbox(SandboxInfo {
                sandbox_id: id.clone(),
                ips: ips.clone(),
                log_directory: log_dir.display().to_string(),
            })),
        )
        .await;
        Ok(Some(Sandbox {
            id,
            config,
            ips,
            log_dir,
            adopted: false,
        }))
    }

    /// RunPodSandbox; after an uncertain failure, adopts what it made or
    /// cleans up and tries once more. `None`: `from_index` and the name is
    /// taken — by a sandbox nobody listed, which is not touched here.
    async fn run_sandbox(
        &self,
        pod: &PodSpec,
        config: &cri::PodSandboxConfig,
        from_index: bool,
    ) -> Result<Option<String>, crate::cri::CriError> {
        let cri = &self.inner.cri;
        match cri
            .run_pod_sandbox(config.clone(), &pod.runtime_handler)
            .await
        {
            Err(e) if from_index && adopt::name_taken(&e) => Ok(None),
            Err(e) if adopt::uncertain(&e) => match adopt::after_uncertain_sandbox(cri, pod).await?
            {
                adopt::Found::Adopt(id) => Ok(Some(id)),
                adopt::Found::Retry => cri
                    .run_pod_sandbox(config.clone(), &pod.runtime_handler)
                    .await
                    .map(Some),
            },
            other => other.map(Some),
        }
    }

    async fn sandbox_ips(&self, id: &str, pod: &PodSpec) -> Result<Vec<String>, StartError> {
        let status = self
            .inner
            .cri
            .pod_sandbox_status(id)
            .await
            .map_err(StartError::SandboxStatus)?;
        Ok(sandbox_spec::pod_ips(&status, pod.host_network))
    }

    /// A regular init container: started (or found), then waited on until it
    /// exits. Exit 0 completes it; otherwise restartPolicy Never fails the
    /// pod and the other policies restart it (after the crash-loop back-off,
    /// applied when it is started again).
    async fn run_init_container(
        &self,
        ctx: &PodContext,
        c: &Container,
    ) -> Result<Started, StartError> {
        let cref = ContainerRef {
            name: c.name.clone(),
            kind: ContainerKind::Init,
        };
        loop {
            ctx.check_cancelled()?;
            let started = Instant::now();
            let s = self.start_once(ctx, c, ContainerKind::Init).await?;
            let id = s.container.container_id.clone();
            if s.adopted {
                let found = self.status_of(&cref, &id).await?;
                if found.state == cri::ContainerState::ContainerExited as i32 {
                    // Found completed: nothing ran now.
                    return Ok(s);
                }
            }
            let status = self
                .wait_for_exit(&ctx.cancel, &cref, &ctx.sandbox_id, &id)
                .await?;
            let mut timings = s.timings;
            timings.push(StepTiming {
                container_name: c.name.clone(),
                step: Step::WaitExit as i32,
                duration_micros: micros(started.elapsed()),
            });
            let policy = ctx.pod.restart_policy();
            let outcome = restart::after_exit(ContainerKind::Init, policy, status.exit_code);
            let message = match outcome {
                AfterExit::Done => format!("Init container {} completed", c.name),
                _ => format!(
                    "Init container {} exited with code {} ({})",
                    c.name, status.exit_code, status.reason
                ),
            };
            ctx.sink
                .emit(exit_event(&cref, &id, &status, message).took(started.elapsed()))
                .await;
            match outcome {
                AfterExit::Done => {
                    return Ok(Started {
                        container: s.container,
                        timings,
                        adopted: s.adopted,
                    });
                }
                AfterExit::FailPod => {
                    return Err(StartError::InitContainerFailed {
                        container: c.name.clone(),
                        exit_code: status.exit_code,
                        reason: status.reason,
                    });
                }
                // Started again on the next turn, through the back-off.
                AfterExit::Restart => {}
            }
        }
    }
}

/// The sandbox annotations that store `req` for recovery (never its
/// credentials); none for a request too large to store, which is logged.
fn stored_request(req: &StartPodRequest, state_root: &std::path::Path) -> HashMap<String, String> {
    let owner = state_root.display().to_string();
    stored::request_annotations(req, &owner).unwrap_or_else(|| {
        tracing::warn!(
            limit = stored::STORED_REQUEST_MAX,
            "the request is too large to store on its sandbox: \
             a podstart restart will not recover this pod"
        );
        HashMap::new()
    })
}
