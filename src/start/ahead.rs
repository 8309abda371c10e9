//! The work of making app containers ahead of their turn (what, when and
//! how; `precreate.rs` holds what was made until the turn comes).
use std::sync::PoisonError;

use tokio::sync::oneshot;

use super::{
    Starter,
    context::PodContext,
    precreate::{Ahead, remove_unused},
    prepull::PrePulled,
};
use crate::proto::v1::{AppStartMode, Container, StartOptions};

/// Whether a container may be made ahead of its turn.
fn may_make_ahead(c: &Container) -> bool {
    c.mounts.iter().all(|m| m.sub_path.is_empty())
}

/// Whether a pod has waits to overlap: init containers, or app containers
/// started one after another.
fn worth_it(ctx: &PodContext, options: &StartOptions) -> bool {
    let sequential = options.app_start() != AppStartMode::Parallel;
    !ctx.pod.init_containers.is_empty() || (sequential && ctx.pod.containers.len() > 1)
}

impl Starter {
    /// Starts making the pod's app containers ahead of their turns, when
    /// the pod has waits to overlap and the sandbox is this start's own.
    pub(super) fn create_ahead(&self, ctx: &PodContext, options: &StartOptions) {
        if options.no_pre_pull || !ctx.instances.is_new_sandbox() || !worth_it(ctx, options) {
            return;
        }
        let mut queue = Vec::new();
        {
            let mut slots = ctx
                .precreates
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for c in ctx.pod.containers.iter().filter(|c| may_make_ahead(c)) {
                let (tx, rx) = oneshot::channel();
                slots.insert(c.name.clone(), rx);
                queue.push((c.clone(), tx));
            }
        }
        let precreates = ctx.precreates.clone();
        let (this, ctx) = (self.clone(), ctx.clone());
        let parallel = options.app_start() == AppStartMode::Parallel;
        let work = tokio::spawn(async move {
            let ahead = queue
                .into_iter()
                .map(|(c, tx)| this.make_one_ahead(&ctx, c, tx));
            if parallel {
                // Their turns create them all at once: so does the work ahead.
                futures::future::join_all(ahead).await;
            } else {
                for one in ahead {
                    one.await;
                }
            }
        });
        *precreates
            .work
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(work);
    }
}

impl Starter {
    /// One container ahead of its turn: its pre-pull awaited, then made if
    /// its image is there and the start still goes on.
    async fn make_one_ahead(&self, ctx: &PodContext, c: Container, tx: oneshot::Sender<Ahead>) {
        // A pull can be long: the end of the start does not wait for it.
        let pre = tokio::select! {
            pre = ctx.images.take(&c.name) => pre,
            () = ctx.precreates.stop.cancelled() => return,
        };
        let image_ref = match &pre {
            Some(PrePulled::Present { found, .. }) => Some(found.id.clone()),
            Some(PrePulled::Pulled(image_ref)) => Some(image_ref.clone()),
            _ => None,
        };
        let over = ctx.precreates.stop.is_cancelled() || ctx.cancel.is_cancelled();
        let made = match image_ref {
            Some(image_ref) if !over => self.make_ahead(ctx, &c, &image_ref).await,
            _ => None,
        };
        if let Err(Ahead {
            made: Some(made), ..
        }) = tx.send(Ahead { pre, made })
        {
            // Its turn gave up waiting: nobody will start it.
            remove_unused(&self.inner.cri, &made.id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::Mount;

    #[test]
    fn a_sub_path_mount_is_resolved_at_the_turn() {
        let mut c = Container {
            name: "a".into(),
            mounts: vec![Mount {
                volume_name: "data".into(),
                container_path: "/data".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(may_make_ahead(&c));
        c.mounts[0].sub_path = "x".into();
        assert!(!may_make_ahead(&c));
    }
}
