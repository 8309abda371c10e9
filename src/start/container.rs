//! The four steps of one container start, as the kubelet's startContainer:
//! image, CreateContainer (with the restart count the kubelet would use),
//! StartContainer, PostStart hook (killing the container if it fails).
use std::{
    path::Path,
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use tracing::Instrument;

use super::{
    ContainerRef, FlowConfig, StartError, Starter, adopt,
    backoff::{self, Verdict},
    context::{PodContext, Started},
    events::{micros, now_unix_nano},
    hooks,
    precreate::Made,
    restart::{self, AfterExit},
    runtime::previous_instances,
    termination,
};
use crate::cri::Cri;
use crate::pleg::{Phase, Pleg, Seen};
use crate::proto::v1::handler::Action;
use crate::proto::v1::{
    BackOffInfo, Container, ContainerInfo, ContainerKind, StartEvent, StartedContainer, Step,
    StepTiming, start_event::Payload,
};
use crate::spec::container::{ContainerContext, container_config};
use crate::spec::labels;
use crate::volumes;

/// The kubelet's minimum grace period when it kills a container.
pub(super) const MIN_GRACE: Duration = Duration::from_secs(2);

impl Starter {
    /// Starts one container once, unless an instance of it already runs or
    /// has exited for good (an init container that completed, a container
    /// the restartPolicy does not restart, an ephemeral container), in which
    /// case that instance is reported and kept. An exited instance that is
    /// to be restarted first goes through the crash-loop back-off.
    pub(super) async fn start_once(
        &self,
        ctx: &PodContext,
        c: &Container,
        kind: ContainerKind,
    ) -> Result<Started, StartError> {
        let cref = ContainerRef {
            name: c.name.clone(),
            kind,
        };
        // Made ahead of this turn (in a sandbox this start made).
        let made = ctx.precreates.take(&c.name, &ctx.images).await;
        let previous = if made.is_some() || ctx.instances.none_yet(&c.name) {
            Vec::new()
        } else {
            previous_instances(&self.inner.cri, &ctx.sandbox_id, &c.name)
                .await
                .map_err(|source| StartError::CreateContainer {
                    container: c.name.clone(),
                    source,
                })?
        };
        if let Some(newest) = previous.first() {
            if newest.state == cri::ContainerState::ContainerRunning as i32 {
                return Ok(self.adopt(ctx, &cref, newest, "running".into()).await);
            }
            if newest.state == cri::ContainerState::ContainerExited as i32 {
                let status = self.status_of(&cref, &newest.id).await?;
                let policy = ctx.pod.restart_policy();
                match restart::after_exit(kind, policy, status.exit_code) {
                    AfterExit::Done => {
                        let what = if kind == ContainerKind::Init {
                            "completed".to_string()
                        } else if kind == ContainerKind::Ephemeral {
                            format!(
                                "exited with code {}; ephemeral containers are never restarted",
                                status.exit_code
                            )
                        } else {
                            format!(
                                "exited with code {} and is not restarted (restartPolicy {})",
                                status.exit_code,
                                restart::policy_name(policy)
                            )
                        };
                        return Ok(self.adopt(ctx, &cref, newest, what).await);
                    }
                    AfterExit::FailPod => {
                        return Err(StartError::InitContainerFailed {
                            container: c.name.clone(),
                            exit_code: status.exit_code,
                            reason: status.reason,
                        });
                    }
                    AfterExit::Restart => {
                        self.crash_loop_backoff(ctx, &cref, c, status.finished_at)
                            .await?;
                        if status.started_at == 0 {
                            self.remove_never_started(&newest.id).await;
                        }
                    }
                }
            }
        }
        self.inner
            .metrics
            .container_start_attempted(cref.kind_label());
        let span = tracing::info_span!("container", name = %c.name, kind = cref.kind_label());
        let result = self
            .four_steps(ctx, &cref, c, &previous, made)
            .instrument(span)
            .await;
        if let Err(e) = &result {
            self.inner
                .metrics
                .container_start_failed(cref.kind_label(), e.reason());
        }
        result
    }

    /// An instance that never ran (its StartContainer failed, or the
    /// runtime went away during it and marked it exited on its return)
    /// has no run to keep: it goes before the new instance is created, so
    /// the pod holds one instance per container. It still counts as an
    /// attempt (the restart count is taken from the instances found).
    async fn remove_never_started(&self, id: &str) {
        if let Err(e) = self.inner.cri.remove_container(id).await
            && !e.is_not_found()
        {
            tracing::warn!(container = %id, error = %e, "removing an instance that never ran");
        }
    }

    /// Reports an instance that needs no new start.
    async fn adopt(
        &self,
        ctx: &PodContext,
        cref: &ContainerRef,
        newest: &cri::Container,
        what: String,
    ) -> Started {
        ctx.sink
            .emit(
                StartEvent::at(
                    Step::Start,
                    "AlreadyStarted",
                    format!("Container {} already {what}", cref.name),
                )
                .of(cref)
                .with(Payload::Container(ContainerInfo {
                    container_id: newest.id.clone(),
                    restart_count: newest.metadata.as_ref().map_or(0, |m| m.attempt),
                    log_path: String::new(),
                })),
            )
            .await;
        Started {
            container: started_container(cref, &newest.id),
            timings: Vec::new(),
            adopted: true,
        }
    }

    /// The kubelet's `doBackOff` for a container that exited at
    /// `finished_at`: while backing off, a `BackOff` event
    /// (CrashLoopBackOff) and a wait until the container may start again.
    pub(super) async fn crash_loop_backoff(
        &self,
        ctx: &PodContext,
        cref: &ContainerRef,
        c: &Container,
        finished_at: i64,
    ) -> Result<(), StartError> {
        let meta = ctx.pod.metadata.clone().unwrap_or_default();
        let key = backoff::stable_key(&meta, c);
        let table = &self.inner.backoff;
        table.gc(now_unix_nano());
        let Verdict::Wait { delay, remaining } = table.check(&key, finished_at, now_unix_nano())
        else {
            return Ok(());
        };
        let pod = format!("{}_{}({})", meta.name, meta.namespace, meta.uid);
        ctx.sink
            .emit(
                StartEvent::at(
                    Step::Start,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {pod}",
                        c.name
                    ),
                )
                .of(cref)
                .warning()
                .with(Payload::BackOff(BackOffInfo {
                    waiting_reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {} restarting failed container={} pod={pod}",
                        crate::duration::go(delay),
                        c.name
                    ),
                    delay_micros: micros(delay),
                    retry_at_unix_nano: now_unix_nano()
                        .saturating_add(i64::try_from(remaining.as_nanos()).unwrap_or(i64::MAX)),
                    finished_at_unix_nano: finished_at,
                })),
            )
            .await;
        ctx.pause(remaining).await?;
        // The delay has passed: the back-off moves on (`Backoff.Next`).
        table.check(&key, finished_at, now_unix_nano());
        Ok(())
    }

    /// The steps of a container start, in the kubelet's order: image,
    /// create (reported only, when `made` ahead of the turn), start,
    /// PostStart. Each step reports its own events; this collects their
    /// timings.
    async fn four_steps(
        &self,
        ctx: &PodContext,
        cref: &ContainerRef,
        c: &Container,
        previous: &[cri::Container],
        made: Option<Made>,
    ) -> Result<Started, StartError> {
        let mut timings = Vec::new();
        let mut timed = |step: Step, took: Duration| {
            timings.push(StepTiming {
                container_name: c.name.clone(),
                step: step as i32,
                duration_micros: micros(took),
            });
        };

        let t = Instant::now();
        let image = self.ensure_image(&ctx.images, cref, c).await;
        let image_ref = match image.and_then(|r| ctx.check_cancelled().map(|()| r)) {
            Ok(image_ref) => image_ref,
            Err(e) => {
                if let Some(made) = made {
                    // Made ahead, never to be started.
                    self.remove_never_started(&made.id).await;
                }
                return Err(e);
            }
        };
        timed(Step::Image, t.elapsed());

        let step = ContainerStep {
            cri: &self.inner.cri,
            pleg: &self.inner.pleg,
            ctx,
            cref,
            c,
        };
        let (id, took) = match made {
            Some(made) => {
                let done = (made.id.clone(), made.took);
                step.report_created(made).await;
                done
            }
            None => {
                step.create(previous, &image_ref, &self.inner.config)
                    .await?
            }
        };
        timed(Step::Create, took);
        timed(Step::Start, step.start(&id).await?);
        if let Some(took) = self.post_start(&step, &id).await? {
            timed(Step::PostStart, took);
        }

        Ok(Started {
            container: started_container(cref, &id),
            timings,
            adopted: false,
        })
    }

    /// Makes an app container ahead of its turn (see `precreate.rs`), from
    /// the image its pre-pull settled; `None` when that failed (its turn
    /// then creates it as usual, reporting what goes wrong).
    pub(super) async fn make_ahead(
        &self,
        ctx: &PodContext,
        c: &Container,
        image_ref: &str,
    ) -> Option<Made> {
        let cref = ContainerRef {
            name: c.name.clone(),
            kind: ContainerKind::App,
        };
        let step = ContainerStep {
            cri: &self.inner.cri,
            pleg: &self.inner.pleg,
            ctx,
            cref: &cref,
            c,
        };
        match step.make(&[], image_ref, &self.inner.config).await {
            Ok(made) => Some(made),
            Err(e) => {
                tracing::debug!(container = %c.name, error = %e, "not made ahead of its turn");
                None
            }
        }
    }

    /// Runs the container's PostStart hook, if it has one, and returns how
    /// long it took. A failed hook kills the container and fails its start.
    // Long: the hook run, its exit watch and its three outcomes read best
    // in one place, in the order their events go out.
    async fn post_start(
        &self,
        step: &ContainerStep<'_>,
        id: &str,
    ) -> Result<Option<Duration>, StartError> {
        let (ctx, cref, c) = (step.ctx, step.cref, step.c);
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return Ok(None);
        };
        let t = Instant::now();
        // A sleep hook ends when the container stops.
        let hook_cancel = ctx.cancel.child_token();
        let exit_watch = matches!(handler.action, Some(Action::Sleep(_))).then(|| {
            let (this, token, cref, sandbox_id, id) = (
                self.clone(),
                hook_cancel.clone(),
                cref.clone(),
                ctx.sandbox_id.clone(),
                id.to_string(),
            );
            tokio::spawn(async move {
                if this
                    .wait_for_exit(&token, &cref, &sandbox_id, &id)
                    .await
                    .is_ok()
                {
                    token.cancel();
                }
            })
        });
        let run = hooks::HookRun {
            cri: step.cri,
            container_id: id,
            container: c,
            pod_ip: ctx.ips.first().map(String::as_str),
            timeout: self.inner.config.hook_timeout,
            cancel: &hook_cancel,
        };
        let result = run.run(handler).await;
        if let Some(watch) = exit_watch {
            watch.abort();
        }
        match result {
            Ok(outcome) => {
                if let Some(host) = outcome.http_fallback {
                    ctx.sink
                        .emit(
                            StartEvent::at(
                                Step::PostStart,
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
                let took = t.elapsed();
                ctx.sink
                    .emit(
                        StartEvent::at(
                            Step::PostStart,
                            "PostStartHookSucceeded",
                            format!("PostStart hook of container {} completed", c.name),
                        )
                        .of(cref)
                        .took(t.elapsed()),
                    )
                    .await;
                Ok(Some(took))
            }
            Err(hook_error) => {
                // The kubelet leaves the hook's message out of the event (it
                // may carry secrets); ours says only what failed.
                ctx.sink
                    .emit(
                        StartEvent::at(
                            Step::PostStart,
                            "FailedPostStartHook",
                            "PostStartHook failed",
                        )
                        .of(cref)
                        .took(t.elapsed())
                        .warning(),
                    )
                    .await;
                kill_container(step.cri, ctx, cref, id, "FailedPostStartHook").await;
                Err(StartError::PostStartHook {
                    container: c.name.clone(),
                    detail: hook_error.to_string(),
                })
            }
        }
    }
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
enum MakeError {
    /// Its config could not be prepared (CreateContainerConfigError).
    #[error("{0}")]
    Config(String),
    /// An ephemeral container's target is not running.
    #[error(transparent)]
    Target(StartError),
    /// CreateContainer failed.
    #[error(transparent)]
    Call(crate::cri::CriError),
}

/// The create and start steps of one container: what they work with,
/// rather than the whole `Starter`.
struct ContainerStep<'a> {
    cri: &'a Cri,
    pleg: &'a Pleg,
    ctx: &'a PodContext,
    cref: &'a ContainerRef,
    c: &'a Container,
}

impl ContainerStep<'_> {
    /// Reports a failed step as a warning event (`reason`, the error as its
    /// message, the time since `began`) and returns the error.
    async fn fail<T>(
        &self,
        step: Step,
        reason: &str,
        err: StartError,
        began: Instant,
    ) -> Result<T, StartError> {
        self.ctx
            .sink
            .emit(
                StartEvent::at(step, reason, err.to_string())
                    .of(self.cref)
                    .took(began.elapsed())
                    .warning(),
            )
            .await;
        Err(err)
    }

    /// CreateContainer from `image_ref`, with the restart count the kubelet
    /// would use and the termination message mount, reported as `Created`
    /// (or `Failed`); returns the container id and how long the create took.
    async fn create(
        &self,
        previous: &[cri::Container],
        image_ref: &str,
        config: &FlowConfig,
    ) -> Result<(String, Duration), StartError> {
        let (ctx, cref, c) = (self.ctx, self.cref, self.c);
        let t = Instant::now();
        match self.make(previous, image_ref, config).await {
            Ok(made) => {
                let took = made.took;
                let id = made.id.clone();
                self.report_created(made).await;
                Ok((id, took))
            }
            Err(MakeError::Config(message)) => Err(config_error(ctx, cref, message).await),
            Err(MakeError::Target(e)) => Err(e),
            Err(MakeError::Call(source)) => {
                let err = StartError::CreateContainer {
                    container: c.name.clone(),
                    source,
                };
                self.fail(Step::Create, "Failed", err, t).await
            }
        }
    }

    /// The `Created` event of a container made by [`Self::make`] (now, or
    /// ahead of its turn).
    async fn report_created(&self, made: Made) {
        let (ctx, cref, c) = (self.ctx, self.cref, self.c);
        ctx.sink
            .emit(
                StartEvent::at(
                    Step::Create,
                    "Created",
                    format!("Created container: {}", c.name),
                )
                .of(cref)
                .took(made.took)
                .with(Payload::Container(ContainerInfo {
                    container_id: made.id,
                    restart_count: made.restart_count,
                    log_path: made.log_path,
                })),
            )
            .await;
    }

    /// Makes the container, without events: stale instances removed, its
    /// config built (mounts, termination message file), CreateContainer
    /// (adopting what an uncertain one made); after a failed create,
    /// whatever holds its name is removed.
    async fn make(
        &self,
        previous: &[cri::Container],
        image_ref: &str,
        config: &FlowConfig,
    ) -> Result<Made, MakeError> {
        let pod_state_root = &config.pod_state_root;
        let (ctx, c) = (self.ctx, self.c);
        // Instances that never started (CREATED, UNKNOWN) hold their name;
        // remove them first.
        for stale in previous.iter().filter(|p| {
            p.state == cri::ContainerState::ContainerCreated as i32
                || p.state == cri::ContainerState::ContainerUnknown as i32
        }) {
            if let Err(e) = self.cri.remove_container(&stale.id).await {
                tracing::warn!(container = %stale.id, error = %e, "removing a stale container");
            }
        }
        let restart_count = restart_count(previous, &ctx.log_dir, &c.name);
        let target = self.target_id().await.map_err(MakeError::Target)?;
        // Each mount's host path: a volume's directory, its subPath made
        // and checked to stay inside it (the kubelet's subpath safety).
        let mount_sources = volumes::mount_sources(&config.pod_volume_root, &ctx.pod, c)
            .map_err(|e| MakeError::Config(format!("failed to prepare the volume mounts: {e}")))?;
        let mut config = container_config(&ContainerContext {
            pod: &ctx.pod,
            container: c,
            kind: self.cref.kind,
            restart_count,
            image: image_ref,
            target_container_id: target.as_deref(),
            mount_sources: &mount_sources,
            node: &ctx.node,
            pod_ips: &ctx.ips,
        });
        let uid = ctx.pod.metadata.as_ref().map_or("", |m| m.uid.as_str());
        let mount = termination::prepare(pod_state_root, uid, c).map_err(|e| {
            MakeError::Config(format!(
                "failed to create the termination message file: {e}"
            ))
        })?;
        config.mounts.push(mount);
        let log_path = ctx.log_dir.join(&config.log_path).display().to_string();
        ctx.instances.creating(&c.name);
        let t = Instant::now();
        let id = match self.create_container(restart_count, config).await {
            Ok(id) => id,
            Err(source) => {
                self.remove_reserved(restart_count).await;
                return Err(MakeError::Call(source));
            }
        };
        self.pleg.track(Seen {
            id: id.clone(),
            sandbox_id: ctx.sandbox_id.clone(),
            name: c.name.clone(),
            attempt: restart_count,
            phase: Phase::Created,
        });
        Ok(Made {
            id,
            restart_count,
            log_path,
            took: t.elapsed(),
        })
    }

    /// StartContainer; returns how long it took.
    async fn start(&self, id: &str) -> Result<Duration, StartError> {
        let t = Instant::now();
        if let Err(source) = self.cri.start_container(id).await {
            let err = StartError::RunContainer {
                container: self.c.name.clone(),
                source,
            };
            return self.fail(Step::Start, "Failed", err, t).await;
        }
        let took = t.elapsed();
        self.ctx
            .sink
            .emit(
                StartEvent::at(
                    Step::Start,
                    "Started",
                    format!("Started container {}", self.c.name),
                )
                .of(self.cref)
                .took(t.elapsed()),
            )
            .await;
        Ok(took)
    }

    /// CreateContainer; after an uncertain failure, adopts what it made or
    /// cleans up and tries once more.
    async fn create_container(
        &self,
        attempt: u32,
        config: cri::ContainerConfig,
    ) -> Result<String, crate::cri::CriError> {
        let ctx = self.ctx;
        let sandbox_config = ctx.sandbox_config.clone();
        match self
            .cri
            .create_container(&ctx.sandbox_id, config.clone(), sandbox_config.clone())
            .await
        {
            Err(e) if adopt::uncertain(&e) => {
                match adopt::after_uncertain_container(
                    self.cri,
                    &ctx.sandbox_id,
                    &self.c.name,
                    attempt,
                )
                .await?
                {
                    adopt::Found::Adopt(id) => Ok(id),
                    adopt::Found::Retry => {
                        self.cri
                            .create_container(&ctx.sandbox_id, config, sandbox_config)
                            .await
                    }
                }
            }
            other => other,
        }
    }

    /// For an ephemeral container with a target: the target's running
    /// container id.
    async fn target_id(&self) -> Result<Option<String>, StartError> {
        let c = self.c;
        if self.cref.kind != ContainerKind::Ephemeral || c.target_container_name.is_empty() {
            return Ok(None);
        }
        let found = previous_instances(self.cri, &self.ctx.sandbox_id, &c.target_container_name)
            .await
            .map_err(|source| StartError::CreateContainer {
                container: c.name.clone(),
                source,
            })?;
        found
            .into_iter()
            .find(|t| t.state == cri::ContainerState::ContainerRunning as i32)
            .map(|t| Some(t.id))
            .ok_or_else(|| StartError::CreateContainerConfig {
                container: c.name.clone(),
                message: format!(
                    "target container {:?} is not running",
                    c.target_container_name
                ),
            })
    }

    /// After a failed CreateContainer the runtime may still hold the name
    /// (a half-created container); remove what carries it.
    async fn remove_reserved(&self, attempt: u32) {
        let Ok(found) = previous_instances(self.cri, &self.ctx.sandbox_id, &self.c.name).await
        else {
            return;
        };
        for c in found
            .iter()
            .filter(|c| c.metadata.as_ref().is_some_and(|m| m.attempt == attempt))
        {
            if let Err(e) = self.cri.remove_container(&c.id).await {
                tracing::warn!(container = %c.id, error = %e, "removing a half-created container");
            }
        }
    }
}

/// Stops a container with the pod's grace period (at least 2 s),
/// reporting a `Killing` event with `message`.
pub(super) async fn kill_container(
    cri: &Cri,
    ctx: &PodContext,
    cref: &ContainerRef,
    id: &str,
    message: &str,
) {
    let grace = ctx
        .pod
        .termination_grace_period_seconds
        .unwrap_or(labels::DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    let grace = Duration::from_secs(grace.max(0) as u64).max(MIN_GRACE);
    let t = Instant::now();
    let result = cri.stop_container(id, grace).await;
    let event = StartEvent::at(Step::StopContainer, "Killing", message)
        .of(cref)
        .took(t.elapsed());
    match result {
        Ok(()) => ctx.sink.emit(event).await,
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "killing container");
            ctx.sink
                .emit(event.warning().with(Payload::Container(ContainerInfo {
                    container_id: id.to_string(),
                    ..Default::default()
                })))
                .await;
        }
    }
}

/// A container config podstart could not prepare (the kubelet's
/// CreateContainerConfigError): its `Failed` warning is sent, and the error
/// returned. Nothing reached the runtime: no duration.
async fn config_error(ctx: &PodContext, cref: &ContainerRef, message: String) -> StartError {
    let err = StartError::CreateContainerConfig {
        container: cref.name.clone(),
        message,
    };
    ctx.sink
        .emit(
            StartEvent::at(Step::Create, "Failed", format!("Error: {err}"))
                .of(cref)
                .warning(),
        )
        .await;
    err
}

fn started_container(cref: &ContainerRef, id: &str) -> StartedContainer {
    let mut s = StartedContainer {
        name: cref.name.clone(),
        container_id: id.to_string(),
        ..Default::default()
    };
    s.set_kind(cref.kind);
    s
}

/// The kubelet's restart count: the previous instance's + 1; without one,
/// the highest `N.log` in the container's log directory + 1 (this survives
/// a runtime that lost its state); else 0.
pub(super) fn restart_count(previous: &[cri::Container], log_dir: &Path, name: &str) -> u32 {
    if let Some(max) = previous
        .iter()
        .filter_map(|c| c.metadata.as_ref().map(|m| m.attempt))
        .max()
    {
        return max + 1;
    }
    let Ok(entries) = std::fs::read_dir(log_dir.join(name)) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| log_number(&e.file_name().to_string_lossy()))
        .max()
        .map_or(0, |n| n + 1)
}

/// `N` from a log file name `N.log` or `N.log.<suffix>` (rotated).
pub(super) fn log_number(file: &str) -> Option<u32> {
    let (digits, rest) = file.split_at(file.find(|ch: char| !ch.is_ascii_digit())?);
    if digits.is_empty() || !(rest == ".log" || rest.starts_with(".log.")) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(attempt: u32) -> cri::Container {
        cri::Container {
            metadata: Some(cri::ContainerMetadata {
                name: "c".into(),
                attempt,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn log_numbers_follow_the_kubelet_pattern() {
        let cases = [
            ("0.log", Some(0)),
            ("12.log", Some(12)),
            ("3.log.20240101-000000", Some(3)),
            ("3.log.gz", Some(3)),
            ("x.log", None),
            ("3.txt", None),
            ("3log", None),
            (".log", None),
        ];
        for (name, want) in cases {
            assert_eq!(log_number(name), want, "{name}");
        }
    }

    #[test]
    fn restart_count_prefers_previous_instances_then_logs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(restart_count(&[], dir.path(), "c"), 0);
        std::fs::create_dir_all(dir.path().join("c")).unwrap();
        for f in ["0.log", "4.log", "2.log.20250101", "notes.txt"] {
            std::fs::write(dir.path().join("c").join(f), "").unwrap();
        }
        assert_eq!(restart_count(&[], dir.path(), "c"), 5);
        assert_eq!(
            restart_count(&[instance(1), instance(7)], dir.path(), "c"),
            8
        );
    }
}
