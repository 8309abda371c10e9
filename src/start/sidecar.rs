//! Sidecars (restartable init containers), as the kubelet's
//! `computeInitContainerActions` treats them: started in init order; the
//! next init container waits until the sidecar runs and, with a startup
//! probe, until the probe succeeds. A sidecar that exits, fails to start or
//! fails its startup probe ("Init container %s failed startup probe": it is
//! killed) is started again, through the crash-loop back-off.
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::{
    ContainerRef, StartError, Starter,
    context::{PodContext, Started},
    events::{exit_event, micros, now_unix_nano},
    probe::{self, Timing},
};
use crate::pleg::Phase;
use crate::proto::v1::{Container, ContainerKind, StartEvent, Step, StepTiming};

/// How a started sidecar's startup went.
enum Startup {
    /// Running, and its startup probe (if any) succeeded.
    Started,
    /// It exited before that.
    Exited(Box<cri::ContainerStatus>),
    /// Its startup probe failed `failure_threshold` times in a row.
    ProbeFailed,
}

/// Pause before reading again a status that lags an exit the node's
/// watcher saw.
const STATUS_CATCH_UP: Duration = Duration::from_millis(20);

impl Starter {
    /// Starts a sidecar and waits until it counts as started.
    pub(super) async fn run_sidecar(
        &self,
        ctx: &PodContext,
        c: &Container,
    ) -> Result<Started, StartError> {
        let cref = ContainerRef {
            name: c.name.clone(),
            kind: ContainerKind::Sidecar,
        };
        loop {
            ctx.check_cancelled()?;
            let began = Instant::now();
            let s = match self.start_once(ctx, c, ContainerKind::Sidecar).await {
                Ok(s) => s,
                Err(e @ (StartError::Cancelled { .. } | StartError::TaskFailed(_))) => {
                    return Err(e);
                }
                Err(e) => {
                    // A sidecar's failure does not end the start: it is
                    // started again.
                    ctx.sink
                        .emit(
                            StartEvent::at(
                                e.step(),
                                e.reason(),
                                format!(
                                    "Sidecar {} failed to start and will be restarted: {e}",
                                    c.name
                                ),
                            )
                            .of(&cref)
                            .warning(),
                        )
                        .await;
                    if matches!(e.step(), Step::Image | Step::Create) {
                        // No exited instance carries the back-off: count
                        // from now.
                        self.crash_loop_backoff(ctx, &cref, c, now_unix_nano())
                            .await?;
                    }
                    continue;
                }
            };
            let id = s.container.container_id.clone();
            match self.startup(ctx, &cref, c, &id).await? {
                Startup::Started => {
                    let mut timings = s.timings;
                    if c.startup_probe.is_some() {
                        timings.push(StepTiming {
                            container_name: c.name.clone(),
                            step: Step::Start as i32,
                            duration_micros: micros(began.elapsed()),
                        });
                    }
                    return Ok(Started { timings, ..s });
                }
                Startup::Exited(status) => {
                    let message = format!(
                        "Sidecar {} exited with code {} ({}) and will be restarted",
                        c.name, status.exit_code, status.reason
                    );
                    ctx.sink
                        .emit(exit_event(&cref, &id, &status, message).took(began.elapsed()))
                        .await;
                }
                Startup::ProbeFailed => {
                    let why = format!("Init container {} failed startup probe", c.name);
                    super::container::kill_container(&self.inner.cri, ctx, &cref, &id, &why).await;
                }
            }
        }
    }

    /// Waits until the sidecar counts as started: running, and with a
    /// startup probe, that probe succeeded.
    async fn startup(
        &self,
        ctx: &PodContext,
        cref: &ContainerRef,
        c: &Container,
        id: &str,
    ) -> Result<Startup, StartError> {
        let status = self.status_of(cref, id).await?;
        if status.state == cri::ContainerState::ContainerExited as i32 {
            return Ok(Startup::Exited(Box::new(status)));
        }
        let Some(p) = c.startup_probe.as_ref() else {
            return Ok(Startup::Started);
        };
        let timing = Timing::of(p);
        ctx.pause(timing.initial_delay).await?;
        let mut failures = 0;
        loop {
            // Between probes, the node's watcher says whether the sidecar
            // exited; only then is its status read.
            if self.inner.pleg.phase(id) == Some(Phase::Exited) {
                let status = self.status_of(cref, id).await?;
                if status.state == cri::ContainerState::ContainerExited as i32 {
                    return Ok(Startup::Exited(Box::new(status)));
                }
                // The runtime's status has not caught up with the exit:
                // no probe of a dead container; look again shortly.
                ctx.pause(STATUS_CATCH_UP).await?;
                continue;
            }
            let t = Instant::now();
            let host = probe::default_host(ctx);
            let result = tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(StartError::Cancelled {
                    why: "the pod is being stopped or podstart is shutting down",
                }),
                r = probe::probe_once(&self.inner.cri, id, c, p, host.as_deref()) => r,
            };
            match result {
                Ok(()) => {
                    ctx.sink
                        .emit(
                            StartEvent::at(
                                Step::Start,
                                "StartupProbeSucceeded",
                                format!("Startup probe of container {} succeeded", c.name),
                            )
                            .of(cref)
                            .took(t.elapsed()),
                        )
                        .await;
                    return Ok(Startup::Started);
                }
                Err(why) => {
                    failures += 1;
                    ctx.sink
                        .emit(
                            StartEvent::at(
                                Step::Start,
                                "Unhealthy",
                                format!("Startup probe failed: {why}"),
                            )
                            .of(cref)
                            .took(t.elapsed())
                            .warning(),
                        )
                        .await;
                    if failures >= timing.failure_threshold {
                        return Ok(Startup::ProbeFailed);
                    }
                }
            }
            ctx.pause(timing.period).await?;
        }
    }
}
