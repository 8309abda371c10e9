//! Pre-pull: as soon as a StartPod is validated, every container's image
//! (ephemeral, init, sidecar, app) starts towards the node — in parallel
//! with sandbox creation and init containers — so that an app container's
//! image is usually there when its turn comes. Container order does not
//! change: each container still waits for its own image at its turn, and
//! whatever concerns a present image, a Never policy, a back-off or a bad
//! reference is reported there, in the kubelet's order. Only pulls report
//! early (Pulling, PullProgress, Pulled/Failed as they happen).
//!
//! Dropping the pod's `PodImages` (the start ended) abandons its pre-pulls;
//! a pull nobody else waits for is then cancelled.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use tokio_util::task::AbortOnDropHandle;

use super::image::{ImageJob, Precheck, emit_present};
use super::{ContainerRef, EventSink, StartError, Starter};
use crate::proto::v1::{
    Container, ContainerKind, ContainerRestartPolicy, PodSpec, RegistryCredential, StartOptions,
};
use crate::spec::image::with_default_tag;

/// What a pre-pull found or did.
pub(super) enum PrePulled {
    /// Already on the node; the container's turn reports it.
    Present {
        image: String,
        found: cri::Image,
        took: Duration,
    },
    /// Pulled, events sent.
    Pulled(String),
    /// The pull failed, events sent.
    Failed(StartError),
    /// Nothing done: the container's turn does the whole step.
    Deferred,
}

/// The images of one StartPod: what the image step needs, and the
/// pre-pulls in flight by container name.
pub(super) struct PodImages {
    pub job: ImageJob,
    pre: Mutex<HashMap<String, Pre>>,
}

/// A container's pre-pull: in flight, or its outcome handed back.
enum Pre {
    Running(AbortOnDropHandle<PrePulled>),
    Done(Box<PrePulled>),
}

impl PodImages {
    /// The same image step for work that outlives the request (restarts
    /// after the start): events go to `sink`, nothing is pre-pulled, and
    /// nothing holds the caller's stream open.
    pub(super) fn detached(&self, sink: EventSink) -> PodImages {
        PodImages {
            job: ImageJob {
                sink,
                lookups: super::image::Lookups::default(),
                ..self.job.clone()
            },
            pre: Mutex::default(),
        }
    }

    /// The pre-pull of a container, once (a restarted container does the
    /// whole step again).
    pub(super) async fn take(&self, container: &str) -> Option<PrePulled> {
        let pre = self
            .pre
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(container)?;
        Some(match pre {
            Pre::Running(handle) => handle.await.unwrap_or(PrePulled::Deferred),
            Pre::Done(outcome) => *outcome,
        })
    }

    /// Gives a taken pre-pull's outcome back, for the container's turn.
    pub(super) fn put_back(&self, container: &str, outcome: PrePulled) {
        self.pre
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(container.to_string(), Pre::Done(Box::new(outcome)));
    }
}

impl Starter {
    /// Step 1 of a container start: returns the image reference to create
    /// the container from. Uses the pod's pre-pull of this container when
    /// there is one, else runs the whole image step now.
    pub(super) async fn ensure_image(
        &self,
        images: &PodImages,
        cref: &ContainerRef,
        c: &Container,
    ) -> Result<String, StartError> {
        if let Some(pre) = images.take(&c.name).await {
            match pre {
                PrePulled::Present { image, found, took } => {
                    emit_present(&images.job.sink, cref, &image, &found, took).await;
                    return Ok(found.id);
                }
                PrePulled::Pulled(image_ref) => return Ok(image_ref),
                PrePulled::Failed(e) => return Err(e),
                PrePulled::Deferred => {}
            }
        }
        self.image_turn(&images.job, cref, c).await
    }

    /// The pod's images, with their pre-pulls started unless the request
    /// opts out; `log_dir` is the pod's (checked) log directory.
    pub(super) fn pod_images(
        &self,
        pod: &PodSpec,
        log_dir: &std::path::Path,
        credentials: Vec<RegistryCredential>,
        options: &StartOptions,
        sink: &EventSink,
    ) -> PodImages {
        let job = ImageJob {
            pod_uid: pod
                .metadata
                .as_ref()
                .map(|m| m.uid.clone())
                .unwrap_or_default(),
            sandbox_config: crate::spec::sandbox::pod_sandbox_config(pod, log_dir),
            credentials: Arc::new(credentials),
            sink: sink.clone(),
            progress: !options.no_pull_progress,
            lookups: super::image::Lookups::default(),
        };
        let mut pre = HashMap::new();
        if !options.no_pre_pull {
            let init_kind = |c: &Container| {
                if c.restart_policy() == ContainerRestartPolicy::Always {
                    ContainerKind::Sidecar
                } else {
                    ContainerKind::Init
                }
            };
            let all = pod
                .ephemeral_containers
                .iter()
                .map(|c| (c, ContainerKind::Ephemeral))
                .chain(pod.init_containers.iter().map(|c| (c, init_kind(c))))
                .chain(pod.containers.iter().map(|c| (c, ContainerKind::App)));
            for (c, kind) in all {
                let this = self.clone();
                let job = job.clone();
                let c = c.clone();
                let name = c.name.clone();
                let task = tokio::spawn(async move { this.pre_pull(&job, &c, kind).await });
                pre.insert(name, Pre::Running(AbortOnDropHandle::new(task)));
            }
        }
        PodImages {
            job,
            pre: Mutex::new(pre),
        }
    }

    async fn pre_pull(&self, job: &ImageJob, c: &Container, kind: ContainerKind) -> PrePulled {
        let started = Instant::now();
        let image = with_default_tag(&c.image);
        match self.precheck(job, c, &image).await {
            Precheck::Present(found) => PrePulled::Present {
                image,
                found,
                took: started.elapsed(),
            },
            Precheck::Pull(parsed) => {
                let cref = ContainerRef {
                    name: c.name.clone(),
                    kind,
                };
                match self.pull(job, &cref, &image, parsed, started).await {
                    Ok(r) => PrePulled::Pulled(r),
                    Err(e) => PrePulled::Failed(e),
                }
            }
            Precheck::Invalid(_)
            | Precheck::InspectFailed(_)
            | Precheck::NeverPullAbsent
            | Precheck::BackingOff(_) => PrePulled::Deferred,
        }
    }
}
