//! After a pod started, the kubelet keeps syncing it: app containers that
//! exit are started again as the pod's restartPolicy says, sidecars always,
//! each through the crash-loop back-off. A supervisor per started pod does
//! that until StopPod, another StartPod of the pod, or shutdown. It wakes on
//! the runtime's container events where there are any, else it relists the
//! pod's containers with a pause growing to `status_poll_max` (the kubelet's
//! PLEG relists every second). Its events go to the node-wide feed: the
//! StartPod stream has ended.
use std::{collections::HashSet, time::Duration};

use k8s_cri::v1 as cri;

use super::{
    ContainerRef, EventSink, Starter,
    context::PodContext,
    events::exit_event,
    restart::{self, AfterExit},
};
use crate::proto::v1::{Container, ContainerKind, ContainerRestartPolicy, RestartPolicy};

/// First pause between two relists without container events.
const FIRST_RELIST: Duration = Duration::from_millis(50);
/// With container events, the pod is still relisted this often.
const SAFETY_RELIST: Duration = Duration::from_secs(5);

impl Starter {
    /// Starts supervising a pod that was just started (replacing an earlier
    /// supervisor of it). Pods with nothing that could restart are left alone.
    pub(super) fn supervise(&self, ctx: &PodContext) {
        let watched = watched(ctx);
        let can_restart = watched
            .iter()
            .any(|(_, kind)| *kind == ContainerKind::Sidecar)
            || ctx.pod.restart_policy() != RestartPolicy::Never;
        if watched.is_empty() || !can_restart {
            return;
        }
        let meta = ctx.pod.metadata.clone().unwrap_or_default();
        let token = self.inner.shutdown.child_token();
        {
            let mut map = self
                .inner
                .supervisors
                .lock()
                .unwrap_or_else(|p| p.into_inner());
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

    // Long: one relist-and-restart loop whose event stream, reported exits
    // and relist delay carry from turn to turn.
    async fn supervise_loop(&self, ctx: &PodContext, watched: &[(Container, ContainerKind)]) {
        let uid = ctx
            .pod
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        let mut events = self.container_events().await;
        let mut reported: HashSet<String> = HashSet::new();
        let mut delay = FIRST_RELIST;
        loop {
            if ctx.cancel.is_cancelled() {
                return;
            }
            let containers = match self
                .inner
                .cri
                .list_containers(Some(&ctx.sandbox_id), Default::default())
                .await
            {
                Ok(list) if !list.is_empty() => list,
                Ok(_) => return, // the sandbox is gone
                Err(e) => {
                    tracing::info!(pod_uid = %uid, error = %e, "supervision ends: the runtime is unreachable");
                    return;
                }
            };
            let mut active = false;
            for (c, kind) in watched {
                let Some(newest) = newest(&containers, &c.name) else {
                    continue;
                };
                if newest.state != cri::ContainerState::ContainerExited as i32 {
                    active = true;
                    continue;
                }
                let cref = ContainerRef {
                    name: c.name.clone(),
                    kind: *kind,
                };
                let Ok(status) = self.status_of(&cref, &newest.id).await else {
                    active = true;
                    continue;
                };
                let policy = ctx.pod.restart_policy();
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
                return; // every container exited for good
            }
            match events.as_mut() {
                Some(stream) => {
                    let woke = tokio::select! {
                        _ = ctx.cancel.cancelled() => return,
                        woke = next_event_in(stream, &ctx.sandbox_id) => woke,
                        _ = tokio::time::sleep(SAFETY_RELIST) => true,
                    };
                    if !woke {
                        events = None;
                    }
                }
                None => {
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.inner.config.status_poll_max);
                }
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

fn newest<'a>(containers: &'a [cri::Container], name: &str) -> Option<&'a cri::Container> {
    containers
        .iter()
        .filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == name))
        .max_by_key(|c| c.metadata.as_ref().map_or(0, |m| m.attempt))
}

/// Waits for an event about a container of the sandbox: true when one
/// came, false when the stream ended.
async fn next_event_in(
    stream: &mut tonic::Streaming<cri::ContainerEventResponse>,
    sandbox_id: &str,
) -> bool {
    loop {
        match stream.message().await {
            Ok(Some(e))
                if e.pod_sandbox_status
                    .as_ref()
                    .is_none_or(|s| s.id == sandbox_id) =>
            {
                return true;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}
