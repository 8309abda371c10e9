//! Probes after the start, as the kubelet's prober workers run them: one
//! worker per running instance of an app container or sidecar that has a
//! liveness or readiness probe (or, for an app container, a startup probe;
//! a sidecar's startup probe gates the start itself, `sidecar.rs`). The
//! pod's supervisor (`supervise.rs`) starts a worker when it sees an
//! instance run and ends it when the instance exits, when the supervision
//! ends (StopPod, a new StartPod, shutdown) and with the pod's
//! cancellation; workers are children of the supervisor's token.
//!
//! A worker first waits for an app container's startup probe, then runs
//! the liveness and readiness probes side by side, each after its initial
//! delay and then once a period. Every failed run is an `Unhealthy`
//! warning (`<Kind> probe failed: <why>`); a probe's verdict changes after
//! `success_threshold` successes or `failure_threshold` failures in a row.
//! A failed liveness or startup verdict kills the instance (`Killing`,
//! `Container <name> failed liveness probe, will be restarted`, with the
//! pod's grace period); the supervisor then restarts it as for any exit.
//! Readiness verdicts go to the node's readiness table
//! (`state::readiness`); each change is a `ContainerReady` or
//! `ContainerNotReady` event with a `Readiness` payload on the node-wide
//! feed.
use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::{
    ContainerRef, Starter,
    container::kill_container,
    context::PodContext,
    probe::{self, Timing},
};
use crate::pleg::{Phase, Seen};
use crate::proto::v1::{
    Container, ContainerKind, Probe, Readiness, RestartPolicy, StartEvent, Step,
    start_event::Payload,
};

/// A probe's verdict over its runs, as the kubelet's worker keeps it: the
/// verdict changes after `success_threshold` successes or
/// `failure_threshold` failures in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tally {
    success_threshold: u32,
    failure_threshold: u32,
    /// The last run's outcome and how many runs in a row had it.
    last: Option<bool>,
    run: u32,
    verdict: bool,
}

impl Tally {
    /// A tally starting at `verdict` (liveness: success; readiness:
    /// failure) with the probe's thresholds (Kubernetes' defaults for 0).
    pub(super) fn new(verdict: bool, p: &Probe) -> Tally {
        Tally {
            success_threshold: p.success_threshold.max(1) as u32,
            failure_threshold: Timing::of(p).failure_threshold,
            last: None,
            run: 0,
            verdict,
        }
    }

    /// Counts one run; the new verdict when it changed.
    pub(super) fn record(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        (self.run >= needed && self.verdict != ok).then(|| {
            self.verdict = ok;
            ok
        })
    }
}

/// When a probe runs: after its initial delay, then once a period.
pub(super) struct Schedule {
    timing: Timing,
    started: bool,
}

impl Schedule {
    pub(super) fn new(timing: Timing) -> Schedule {
        Schedule {
            timing,
            started: false,
        }
    }

    /// Waits until the next run is due.
    pub(super) async fn due(&mut self) {
        let wait = if self.started {
            self.timing.period
        } else {
            self.timing.initial_delay
        };
        self.started = true;
        tokio::time::sleep(wait).await;
    }
}

/// How a startup or liveness probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A startup probe succeeded (a liveness probe never does: it runs on).
    Succeeded,
    /// `failure_threshold` failures in a row.
    Failed,
    /// The instance exited.
    Exited,
}

/// Which probe a run belongs to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Startup,
    Liveness,
    Readiness,
}

impl Which {
    fn title(self) -> &'static str {
        match self {
            Which::Startup => "Startup",
            Which::Liveness => "Liveness",
            Which::Readiness => "Readiness",
        }
    }
}

/// Whether the container has probes a worker runs after its start.
pub(super) fn probed(c: &Container, kind: ContainerKind) -> bool {
    c.liveness_probe.is_some()
        || c.readiness_probe.is_some()
        || (kind == ContainerKind::App && c.startup_probe.is_some())
}

/// One running container instance's probes.
struct Worker {
    starter: Starter,
    ctx: PodContext,
    c: Container,
    cref: ContainerRef,
    id: String,
    host: Option<String>,
}

/// The probe workers of a supervised pod's running containers, by
/// container name. Dropping it ends them.
#[derive(Default)]
pub(super) struct Probers {
    workers: HashMap<String, (String, CancellationToken)>,
}

impl Drop for Probers {
    fn drop(&mut self) {
        for (_, token) in self.workers.values() {
            token.cancel();
        }
    }
}

impl Probers {
    /// Matches the workers to the instances the node's watcher shows: a
    /// worker for each probed container's newest instance while it runs,
    /// none for instances that exited (whose readiness is withdrawn).
    pub(super) async fn sync(
        &mut self,
        starter: &Starter,
        ctx: &PodContext,
        watched: &[(Container, ContainerKind)],
        containers: &[Seen],
    ) {
        for (c, kind) in watched {
            if !probed(c, *kind) {
                continue;
            }
            let newest = containers
                .iter()
                .filter(|s| s.name == c.name)
                .max_by_key(|s| s.attempt);
            let running = newest.filter(|s| s.phase == Phase::Running);
            if let Some((id, token)) = self.workers.get(&c.name) {
                if running.is_some_and(|s| s.id == *id) {
                    continue;
                }
                token.cancel();
                let id = id.clone();
                self.workers.remove(&c.name);
                let cref = ContainerRef {
                    name: c.name.clone(),
                    kind: *kind,
                };
                readiness_changed(starter, ctx, &cref, &id, false, "it is not running").await;
            }
            if let Some(s) = running {
                let token = ctx.cancel.child_token();
                starter.spawn_worker(ctx, c, *kind, &s.id, token.clone());
                self.workers.insert(c.name.clone(), (s.id.clone(), token));
            }
        }
    }
}

impl Starter {
    fn spawn_worker(
        &self,
        ctx: &PodContext,
        c: &Container,
        kind: ContainerKind,
        id: &str,
        token: CancellationToken,
    ) {
        let worker = Worker {
            starter: self.clone(),
            ctx: ctx.clone(),
            c: c.clone(),
            cref: ContainerRef {
                name: c.name.clone(),
                kind,
            },
            id: id.to_string(),
            host: probe::default_host(ctx),
        };
        tokio::spawn(async move {
            let failed = tokio::select! {
                _ = token.cancelled() => return,
                failed = worker.run() => failed,
            };
            let Some(failed) = failed else {
                return;
            };
            // The kill runs to its end even if the exit it causes ends the
            // worker's supervision first; a stop of the pod ends it.
            tokio::select! {
                _ = worker.ctx.cancel.cancelled() => {}
                _ = worker.kill(failed) => {}
            }
        });
    }
}

/// Records a container instance's readiness; on a change, says so on the
/// node-wide feed with the pod's Ready condition after it.
async fn readiness_changed(
    starter: &Starter,
    ctx: &PodContext,
    cref: &ContainerRef,
    id: &str,
    ready: bool,
    why: &str,
) {
    let uid = ctx
        .pod
        .metadata
        .as_ref()
        .map(|m| m.uid.as_str())
        .unwrap_or_default();
    let table = &starter.inner.readiness;
    if !table.set(uid, &cref.name, id, ready) {
        return;
    }
    // A counted container that is not ready makes the pod not ready.
    let pod_ready = ready && {
        let mut newest: HashMap<String, (u32, String)> = HashMap::new();
        for s in starter.inner.pleg.containers(&ctx.sandbox_id) {
            if s.phase == Phase::Running && newest.get(&s.name).is_none_or(|(a, _)| s.attempt > *a)
            {
                newest.insert(s.name.clone(), (s.attempt, s.id.clone()));
            }
        }
        let mut running: HashMap<String, String> =
            newest.into_iter().map(|(n, (_, i))| (n, i)).collect();
        // The probe just reached it: it runs, whatever the watcher says yet.
        running.insert(cref.name.clone(), id.to_string());
        table.pod_ready(uid, &running)
    };
    let (reason, message) = if ready {
        (
            "ContainerReady",
            format!("Container {} is ready", cref.name),
        )
    } else {
        (
            "ContainerNotReady",
            format!("Container {} is not ready: {why}", cref.name),
        )
    };
    ctx.sink
        .emit(
            StartEvent::at(Step::Start, reason, message)
                .of(cref)
                .with(Payload::Readiness(Readiness {
                    container_ready: ready,
                    pod_ready,
                })),
        )
        .await;
}

impl Worker {
    /// Runs the probes until a startup or liveness verdict fails
    /// (`Some(which)`: the instance is to be killed) or the instance exited
    /// (`None`; the supervisor ends the worker).
    async fn run(&self) -> Option<Which> {
        if self.cref.kind == ContainerKind::App
            && let Some(p) = self.c.startup_probe.as_ref()
        {
            match self.until_verdict(Which::Startup, p, true).await {
                Verdict::Succeeded => {}
                Verdict::Failed => return Some(Which::Startup),
                Verdict::Exited => return None,
            }
        }
        let liveness = async {
            match self.c.liveness_probe.as_ref() {
                Some(p) => match self.until_verdict(Which::Liveness, p, false).await {
                    Verdict::Failed => Some(Which::Liveness),
                    Verdict::Succeeded | Verdict::Exited => {
                        self.set_ready(false, "it is not running").await;
                        None
                    }
                },
                None => std::future::pending().await,
            }
        };
        let readiness = async {
            match self.c.readiness_probe.as_ref() {
                Some(p) => self.readiness(p).await,
                // Gated by the startup probe only: ready now.
                None => self.set_ready(true, "").await,
            }
            std::future::pending::<Option<Which>>().await
        };
        // Only a failed liveness verdict or an exit ends the worker.
        tokio::select! {
            ended = liveness => ended,
            never = readiness => never,
        }
    }

    /// Runs a startup probe until its first success or a liveness probe
    /// for ever, until its verdict fails or the instance exits.
    async fn until_verdict(&self, which: Which, p: &Probe, until_success: bool) -> Verdict {
        let mut tally = Tally::new(true, p);
        let mut schedule = Schedule::new(Timing::of(p));
        loop {
            schedule.due().await;
            match self.probe(p).await {
                None => return Verdict::Exited,
                Some(Ok(())) if until_success => return Verdict::Succeeded,
                Some(Ok(())) => {
                    tally.record(true);
                }
                Some(Err(why)) => {
                    self.unhealthy(which, &why).await;
                    if tally.record(false) == Some(false) {
                        return Verdict::Failed;
                    }
                }
            }
        }
    }

    /// Runs the readiness probe until the instance exits (then it is not
    /// ready), recording each change.
    async fn readiness(&self, p: &Probe) {
        let mut tally = Tally::new(false, p);
        let mut schedule = Schedule::new(Timing::of(p));
        loop {
            schedule.due().await;
            let Some(outcome) = self.probe(p).await else {
                self.set_ready(false, "it is not running").await;
                return;
            };
            if let Err(why) = &outcome {
                self.unhealthy(Which::Readiness, why).await;
            }
            if let Some(ready) = tally.record(outcome.is_ok()) {
                self.set_ready(ready, "readiness probe failed").await;
            }
        }
    }

    /// One run of a probe; `None` when the node's watcher saw the instance
    /// exit (before the run, or by the time it failed): a dead container
    /// is not probed, nor reported unhealthy.
    async fn probe(&self, p: &Probe) -> Option<Result<(), String>> {
        let exited = || self.starter.inner.pleg.phase(&self.id) == Some(Phase::Exited);
        if exited() {
            return None;
        }
        let outcome = probe::probe_once(
            &self.starter.inner.cri,
            &self.id,
            &self.c,
            p,
            self.host.as_deref(),
        )
        .await;
        if outcome.is_err() && exited() {
            return None;
        }
        Some(outcome)
    }

    async fn unhealthy(&self, which: Which, why: &str) {
        let message = format!("{} probe failed: {why}", which.title());
        self.ctx
            .sink
            .emit(
                StartEvent::at(Step::Start, "Unhealthy", message)
                    .of(&self.cref)
                    .warning(),
            )
            .await;
    }

    async fn set_ready(&self, ready: bool, why: &str) {
        readiness_changed(&self.starter, &self.ctx, &self.cref, &self.id, ready, why).await;
    }

    /// Kills the instance after a failed startup or liveness verdict; the
    /// supervisor restarts it as its restart policy says.
    async fn kill(&self, failed: Which) {
        self.set_ready(false, "it is being killed").await;
        let restarts = self.cref.kind == ContainerKind::Sidecar
            || self.ctx.pod.restart_policy() != RestartPolicy::Never;
        let mut message = format!(
            "Container {} failed {} probe",
            self.c.name,
            failed.title().to_ascii_lowercase()
        );
        if restarts {
            message.push_str(", will be restarted");
        }
        kill_container(
            &self.starter.inner.cri,
            &self.ctx,
            &self.cref,
            &self.id,
            &message,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    fn probe(success_threshold: i32, failure_threshold: i32) -> Probe {
        Probe {
            success_threshold,
            failure_threshold,
            period_seconds: 1,
            ..Default::default()
        }
    }

    /// Feeds `runs` (`+` success, `-` failure) and shows where the verdict
    /// changed (`S`/`F`) or not (`.`).
    fn feed(tally: &mut Tally, runs: &str) -> String {
        runs.chars()
            .map(|r| match tally.record(r == '+') {
                Some(true) => 'S',
                Some(false) => 'F',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn verdicts_change_after_thresholds_in_a_row() {
        // (starting verdict, success threshold, failure threshold, runs, changes)
        let table = [
            // Liveness: the third failure in a row fails it.
            (true, 0, 3, "--+---", ".....F"),
            (true, 1, 1, "+-", ".F"),
            // Kubernetes' default failure threshold is 3.
            (true, 1, 0, "---", "..F"),
            // Readiness: ready at the first success, unready after two
            // failures in a row, ready again.
            (false, 1, 2, "+-+--+", "S...FS"),
            // Two successes in a row needed.
            (false, 2, 1, "+-++-", "...SF"),
            (false, 1, 1, "--", ".."),
        ];
        for (start, success, failure, runs, want) in table {
            let mut tally = Tally::new(start, &probe(success, failure));
            assert_eq!(
                feed(&mut tally, runs),
                want,
                "start {start}, thresholds {success}/{failure}, runs {runs}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_come_after_the_initial_delay_then_each_period() {
        let timing = Timing::of(&Probe {
            initial_delay_seconds: 5,
            period_seconds: 2,
            ..Default::default()
        });
        let began = tokio::time::Instant::now();
        let mut schedule = Schedule::new(timing);
        let mut at = Vec::new();
        for _ in 0..3 {
            schedule.due().await;
            at.push(began.elapsed());
        }
        let secs = |s| Duration::from_secs(s);
        assert_eq!(at, [secs(5), secs(7), secs(9)]);
        let mut immediate = Schedule::new(Timing::of(&Probe::default()));
        let t = tokio::time::Instant::now();
        immediate.due().await;
        assert_eq!(t.elapsed(), Duration::ZERO, "no initial delay");
        immediate.due().await;
        assert_eq!(t.elapsed(), secs(10), "Kubernetes' default period");
    }
}
