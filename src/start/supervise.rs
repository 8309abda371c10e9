//! After a pod started, the kubelet keeps syncing it: app containers that
//! exit are started again as the pod's restartPolicy says, sidecars always,
//! each through the crash-loop back-off. A supervisor per started pod does
//! that until StopPod, another StartPod of the pod, or shutdown. It holds no
//! stream and makes no periodic call of its own: it wakes when the node's
//! watcher (`pleg/`) has news of the pod's sandbox and reads the pod's
//! containers from the watcher's table; only an exit costs a
//! ContainerStatus. Its events go to the node-wide feed: the StartPod
//! stream has ended. It also keeps a probe worker (`probing.rs`) for each
//! running container with liveness or readiness probes, so pods with
//! probes are supervised under any restartPolicy.
use std::{collections::HashSet, time::Duration};

use k8s_cri::v1 as cri;

use super::{
    ContainerRef, EventSink, Starter,
    context::PodContext,
    events::exit_event,
    probing::{self, Probers},
    restart::{self, AfterExit},
};
use crate::pleg::{Phase, Seen};
use crate::proto::v1::{Container, ContainerKind, ContainerRestartPolicy, RestartPolicy};

/// A restart that failed (the runtime was away, say) is tried again after
/// this long without news.
const RETRY_FAILED: Duration = Duration::from_secs(1);
/// First and longest pause before reading again a status that has not
/// caught up with an exit the watcher saw.
const CATCH_UP_FIRST: Duration = Duration::from_millis(2);
const CATCH_UP_MAX: Duration = Duration::from_millis(200);

impl Starter {
    /// Starts supervising a pod that was just started (replacing an earlier
    /// supervisor of it). Pods with nothing that could restart are left alone.
    pub(super) fn supervise(&self, ctx: &PodContext) {
        let meta = ctx.pod.metadata.clone().unwrap_or_default();
        self.inner.readiness.track(&meta.uid, &ctx.pod);
        let watched = watched(ctx);
        let can_restart = watched
            .iter()
            .any(|(_, kind)| *kind == ContainerKind::Sidecar)
            || ctx.pod.restart_policy() != RestartPolicy::Never;
        let probed = watched.iter().any(|(c, kind)| probing::probed(c, *kind));
        if watched.is_empty() || !(can_restart || probed) {
            return;
        }
        let token = self.inner.shutdown.child_token();
        {
            let mut map = self
                .inner
                .supervisors
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A StopPod that came while the pod was starting (it cancelled
            // the start) wants no supervisor.
            if ctx.cancel.is_cancelled() {
                return;
            }
            if let Some(old) = map.insert(meta.uid.clone(), token.clone()) {
                old.cancel();
            }
        }
        let sink = EventSink::new(&meta, None, self.bus());
        let ctx = PodContext {
            images: std::sync::Arc::new(ctx.images.detached(sink.clone())),
            sink,
            cancel: token.clone(),
            ..ctx.clone()
        };
        let this = self.clone();
        tokio::spawn(async move {
            this.supervise_loop(&ctx, &watched).await;
            let mut map = this
                .inner
                .supervisors
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map
                .get(&meta.uid)
                .is_some_and(|t| t.is_cancelled() || *t == token)
            {
                map.remove(&meta.uid);
            }
        });
    }

    /// Ends the supervision of a pod (StopPod, a new StartPod).
    pub(super) fn stop_supervising(&self, uid: &str) {
        let mut map = self
            .inner
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(token) = map.remove(uid) {
            token.cancel();
        }
    }

    // Long: one read-the-table-and-restart loop whose reported exits carry
    // from turn to turn.
    async fn supervise_loop(&self, ctx: &PodContext, watched: &[(Container, ContainerKind)]) {
        let uid = ctx
            .pod
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        let pleg = &self.inner.pleg;
        let mut changes = pleg.subscribe(&ctx.sandbox_id);
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = pleg.synced() => {}
        }
        // Exits reported on the feed, and those not restarted.
        let mut reported: HashSet<String> = HashSet::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut catch_up = CATCH_UP_FIRST;
        // The probe workers of the running containers; they end with it.
        let mut probers = Probers::default();
        loop {
            if ctx.cancel.is_cancelled() {
                return;
            }
            changes.mark_seen();
            let containers = pleg.containers(&ctx.sandbox_id);
            probers.sync(self, ctx, watched, &containers).await;
            let mut active = false;
            let mut behind = false;
            for (c, kind) in watched {
                let Some(newest) = newest(&containers, &c.name) else {
                    continue;
                };
                if newest.phase != Phase::Exited {
                    active = true;
                    continue;
                }
                if done.contains(&newest.id) {
                    continue; // exited for good, and said so
                }
                let policy = ctx.pod.restart_policy();
                let cref = ContainerRef {
                    name: c.name.clone(),
                    kind: *kind,
                };
                let Ok(status) = self.status_of(&cref, &newest.id).await else {
                    active = true;
                    continue;
                };
                if status.state != cri::ContainerState::ContainerExited as i32 {
                    // The watcher is ahead of the runtime's status (its CRI
                    // handles the same exit a moment later): look again soon.
                    active = true;
                    behind = true;
                    continue;
                }
                let outcome = restart::after_exit(*kind, policy, status.exit_code);
                if reported.insert(newest.id.clone()) {
                    let message = match outcome {
                        AfterExit::Restart => format!(
                            "Container {} exited with code {} ({})",
                            c.name, status.exit_code, status.reason
                        ),
                        _ => format!(
                            "Container {} exited with code {} ({}); restartPolicy {} does not restart it",
                            c.name,
                            status.exit_code,
                            status.reason,
                            restart::policy_name(policy)
                        ),
                    };
                    ctx.sink
                        .emit(exit_event(&cref, &newest.id, &status, message))
                        .await;
                }
                if outcome != AfterExit::Restart {
                    done.insert(newest.id.clone());
                    continue;
                }
                active = true;
                let _guard = self.inner.locks.enter(&uid).await;
                if ctx.cancel.is_cancelled() {
                    return;
                }
                let restarted = match kind {
                    ContainerKind::Sidecar => self.run_sidecar(ctx, c).await.map(drop),
                    _ => self.start_once(ctx, c, *kind).await.map(drop),
                };
                if let Err(e) = restarted {
                    tracing::info!(pod_uid = %uid, container = %c.name, error = %e, "restart failed");
                }
            }
            if !active {
                return; // every container exited for good, or the sandbox is gone
            }
            let retry = if behind {
                let pause = catch_up;
                catch_up = (catch_up * 2).min(CATCH_UP_MAX);
                pause
            } else {
                catch_up = CATCH_UP_FIRST;
                RETRY_FAILED
            };
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                alive = changes.changed() => if !alive { return },
                // A restart that failed is tried again; a status behind
                // the watcher is read again.
                _ = tokio::time::sleep(retry), if behind || !settled(&containers, watched, &done) => {}
            }
        }
    }
}

/// Sidecars and app containers: what may need restarting after the start.
fn watched(ctx: &PodContext) -> Vec<(Container, ContainerKind)> {
    let sidecars = ctx
        .pod
        .init_containers
        .iter()
        .filter(|c| c.restart_policy() == ContainerRestartPolicy::Always)
        .map(|c| (c.clone(), ContainerKind::Sidecar));
    let apps = ctx
        .pod
        .containers
        .iter()
        .map(|c| (c.clone(), ContainerKind::App));
    sidecars.chain(apps).collect()
}

fn newest<'a>(containers: &'a [Seen], name: &str) -> Option<&'a Seen> {
    containers
        .iter()
        .filter(|c| c.name == name)
        .max_by_key(|c| c.attempt)
}

/// Whether every watched container's newest instance runs or has exited
/// for good (nothing to retry while no news comes).
fn settled(
    containers: &[Seen],
    watched: &[(Container, ContainerKind)],
    done: &HashSet<String>,
) -> bool {
    watched.iter().all(|(c, _)| {
        newest(containers, &c.name)
            .is_some_and(|n| n.phase == Phase::Running || done.contains(&n.id))
    })
}
