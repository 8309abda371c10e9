//! Step 1 of a container start: make sure its image is on the node, as the
//! kubelet's image manager does — the reference checked and default-tagged
//! before any CRI call, the pull policy (with the `:latest` default),
//! ImageStatus first for IfNotPresent/Never, the per-(pod, image) back-off,
//! then a pull through the node's puller (shared with every other request
//! for the same image) with Pulling, PullProgress and Pulled/Failed events.
//!
//! The check before a pull (`precheck`) emits nothing, so a pre-pull can
//! use it early and leave the reporting of a present image, a Never policy
//! or a back-off to the container's turn. Knows nothing of pre-pulls: the
//! step as a container runs it (`ensure_image`) is in `prepull.rs`.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use tokio::sync::watch;

use super::{ContainerRef, EventSink, StartError, Starter, events::micros};
use crate::cri::CriError;
use crate::duration;
use crate::images::{FlightState, Progress, PullSpec, backoff, keyring};
use crate::proto::v1::{
    Container, ImageInfo, ImagePullProgress, ProgressSource, PullPolicy, RegistryCredential,
    StartEvent, Step, start_event::Payload,
};
use crate::spec::image::{ImageRef, effective_pull_policy, parse_image, with_default_tag};

/// The kubelet truncates pull times to this before printing them.
const MILLISECOND: Duration = Duration::from_millis(1);

/// Heartbeats (no measured progress) come at most this often.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// What the image step needs from its pod; it exists before the sandbox
/// does, so a pre-pull can use it.
#[derive(Clone)]
pub(super) struct ImageJob {
    pub pod_uid: String,
    pub sandbox_config: cri::PodSandboxConfig,
    pub credentials: Arc<Vec<RegistryCredential>>,
    pub sink: EventSink,
    /// Emit PullProgress events.
    pub progress: bool,
    /// ImageStatus answers of this start.
    pub lookups: Lookups,
}

/// The runtime's ImageStatus answers within one start: one look-up per
/// distinct image however many of the pod's containers use it, shared by
/// look-ups in flight at once. A failed look-up is not kept (the next
/// container asks again). Work after the start (restarts) gets a new,
/// empty set: each restart checks its image again, as the kubelet does.
#[derive(Clone, Default)]
pub(super) struct Lookups {
    by_image: Arc<Mutex<HashMap<String, Arc<Lookup>>>>,
}

/// One image's status, once answered (`None`: not on the node).
type Lookup = tokio::sync::OnceCell<Option<cri::Image>>;

impl Lookups {
    /// The image's status: the answer this start already has, else one
    /// ImageStatus.
    async fn status(
        &self,
        cri: &crate::cri::Cri,
        image: &str,
    ) -> Result<Option<cri::Image>, CriError> {
        let cell = self
            .by_image
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(image.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| cri.image_status(image))
            .await
            .cloned()
    }
}

/// What the runtime has, before any pull.
pub(super) enum Precheck {
    Invalid(String),
    Present(cri::Image),
    /// Pull it (absent, or policy Always).
    Pull(ImageRef),
    InspectFailed(CriError),
    NeverPullAbsent,
    BackingOff(backoff::Blocked),
}

impl Starter {
    /// The kubelet's EnsureImageExists, with every event.
    pub(super) async fn image_turn(
        &self,
        job: &ImageJob,
        cref: &ContainerRef,
        c: &Container,
    ) -> Result<String, StartError> {
        let started = Instant::now();
        let image = with_default_tag(&c.image);
        let sink = &job.sink;
        let fail = async |reason: &str, err: StartError| {
            sink.emit(
                StartEvent::at(Step::Image, reason, err.to_string())
                    .of(cref)
                    .took(started.elapsed())
                    .warning(),
            )
            .await;
            Err(err)
        };
        match self.precheck(job, c, &image).await {
            Precheck::Invalid(reason) => {
                let err = StartError::InvalidImageName {
                    container: cref.name.clone(),
                    image,
                    reason,
                };
                fail("InspectFailed", err).await
            }
            Precheck::InspectFailed(source) => {
                let err = StartError::ImageInspect {
                    container: cref.name.clone(),
                    image,
                    source,
                };
                fail("InspectFailed", err).await
            }
            Precheck::NeverPullAbsent => {
                let err = StartError::ImageNeverPull {
                    container: cref.name.clone(),
                    image,
                };
                fail("ErrImageNeverPull", err).await
            }
            Precheck::BackingOff(blocked) => {
                let err = StartError::ImagePullBackOff {
                    container: cref.name.clone(),
                    image,
                    previous: blocked.last_error,
                };
                // Normal, as in the kubelet.
                sink.emit(
                    StartEvent::at(Step::Image, "BackOff", err.to_string())
                        .of(cref)
                        .took(started.elapsed()),
                )
                .await;
                Err(err)
            }
            Precheck::Present(found) => {
                emit_present(sink, cref, &image, &found, started.elapsed()).await;
                Ok(found.id)
            }
            Precheck::Pull(parsed) => self.pull(job, cref, &image, parsed, started).await,
        }
    }

    /// Everything before a pull, without events.
    pub(super) async fn precheck(&self, job: &ImageJob, c: &Container, image: &str) -> Precheck {
        let parsed = match parse_image(image) {
            Ok(p) => p,
            Err(e) => return Precheck::Invalid(e.reason),
        };
        let policy = effective_pull_policy(c.image_pull_policy(), &c.image);
        if policy != PullPolicy::Always {
            match job.lookups.status(&self.inner.cri, image).await {
                Err(e) => return Precheck::InspectFailed(e),
                Ok(Some(found)) => return Precheck::Present(found),
                Ok(None) if policy == PullPolicy::Never => return Precheck::NeverPullAbsent,
                Ok(None) => {}
            }
        }
        let key = backoff::key(&job.pod_uid, image);
        if let Some(blocked) = self
            .inner
            .pull_backoff
            .blocked(&key, tokio::time::Instant::now())
        {
            return Precheck::BackingOff(blocked);
        }
        Precheck::Pull(parsed)
    }

    /// Pulls through the node's puller and tells this container's story of
    /// it: Pulling, PullProgress while it runs, then Pulled or Failed.
    /// `started` is when this container began waiting for its image.
    // Long: one container's whole story of a pull (Pulling, progress,
    // Pulled or Failed with the back-off), kept in event order.
    pub(super) async fn pull(
        &self,
        job: &ImageJob,
        cref: &ContainerRef,
        image: &str,
        parsed: ImageRef,
        started: Instant,
    ) -> Result<String, StartError> {
        let sink = &job.sink;
        sink.emit(
            StartEvent::at(Step::Image, "Pulling", format!("Pulling image {image:?}")).of(cref),
        )
        .await;
        let credentials = keyring::lookup(&parsed, &job.credentials)
            .into_iter()
            .cloned()
            .collect();
        let ticket = self.inner.puller.pull(PullSpec {
            image: image.to_string(),
            parsed,
            credentials,
            sandbox_config: Some(job.sandbox_config.clone()),
        });
        let interval = self.inner.puller.config().sample_interval;
        let mut reporter = Reporter {
            image,
            cref,
            sink,
            started,
            enabled: job.progress,
            interval,
            last: None,
        };
        let mut state = ticket.state();
        let mut running_since = None;
        let outcome = loop {
            let now = state.borrow_and_update().clone();
            match now {
                FlightState::Done(r) => break Some(r),
                FlightState::Queued => reporter.maybe_emit(None).await,
                FlightState::Running(p) => {
                    running_since.get_or_insert_with(Instant::now);
                    reporter.maybe_emit(Some(p)).await;
                }
            }
            if !wait_for_change(&mut state, interval.max(HEARTBEAT_EVERY)).await {
                break None;
            }
        };
        let key = backoff::key(&job.pod_uid, image);
        let result = match outcome {
            Some(r) => r,
            None => {
                return Err(StartError::TaskFailed(
                    "the pull task ended without a result".into(),
                ));
            }
        };
        match result {
            Ok(pulled) => {
                self.inner.pull_backoff.succeeded(&key);
                // Waiting included, as the kubelet's histogram.
                self.inner
                    .metrics
                    .image_pulled(pulled.size, started.elapsed());
                let pulled_in = running_since.map_or(Duration::ZERO, |t| t.elapsed());
                sink.emit(
                    StartEvent::at(
                        Step::Image,
                        "Pulled",
                        format!(
                            "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {} bytes.",
                            duration::go(duration::truncate(pulled_in, MILLISECOND)),
                            duration::go(duration::truncate(started.elapsed(), MILLISECOND)),
                            pulled.size,
                        ),
                    )
                    .of(cref)
                    .took(started.elapsed())
                    .with(Payload::Image(ImageInfo {
                        image: image.to_string(),
                        image_ref: pulled.image_ref.clone(),
                        size_bytes: pulled.size,
                        already_present: false,
                    })),
                )
                .await;
                Ok(pulled.image_ref)
            }
            Err(source) => {
                let err = StartError::ImagePull {
                    container: cref.name.clone(),
                    image: image.to_string(),
                    source,
                };
                self.inner.pull_backoff.failed(
                    &key,
                    tokio::time::Instant::now(),
                    ticket.pull_id(),
                    err.to_string(),
                );
                sink.emit(
                    StartEvent::at(Step::Image, "Failed", err.to_string())
                        .of(cref)
                        .took(started.elapsed())
                        .warning(),
                )
                .await;
                Err(err)
            }
        }
    }
}

/// Waits for the shared state to change, or `at_most`. False when the pull
/// task is gone.
async fn wait_for_change(state: &mut watch::Receiver<FlightState>, at_most: Duration) -> bool {
    tokio::select! {
        r = state.changed() => r.is_ok(),
        _ = tokio::time::sleep(at_most) => true,
    }
}

/// Rate-limits one container's PullProgress events.
struct Reporter<'a> {
    image: &'a str,
    cref: &'a ContainerRef,
    sink: &'a EventSink,
    started: Instant,
    enabled: bool,
    interval: Duration,
    last: Option<(Instant, Option<Progress>)>,
}

impl Reporter<'_> {
    /// `None`: queued for a slot.
    async fn maybe_emit(&mut self, p: Option<Progress>) {
        if !self.enabled {
            return;
        }
        let since_last = self
            .last
            .as_ref()
            .map_or(self.started.elapsed(), |(t, _)| t.elapsed());
        let measured = p.as_ref().is_some_and(|p| p.measured);
        let due = if measured {
            since_last >= self.interval
                && self
                    .last
                    .as_ref()
                    .is_none_or(|(_, prev)| prev.as_ref() != p.as_ref())
        } else {
            since_last >= self.interval.max(HEARTBEAT_EVERY)
        };
        if !due {
            return;
        }
        let elapsed = self.started.elapsed();
        let (payload, message) = progress_payload(self.image, p.as_ref(), elapsed);
        self.sink
            .emit_progress(
                StartEvent::at(Step::Image, "PullProgress", message)
                    .of(self.cref)
                    .with(Payload::PullProgress(payload)),
            )
            .await;
        self.last = Some((Instant::now(), p));
    }
}

fn progress_payload(
    image: &str,
    p: Option<&Progress>,
    elapsed: Duration,
) -> (ImagePullProgress, String) {
    let mut payload = ImagePullProgress {
        image: image.to_string(),
        elapsed_micros: micros(elapsed),
        queued: p.is_none(),
        ..Default::default()
    };
    let waited = humantime::format_duration(Duration::from_secs(elapsed.as_secs()));
    let message = match p {
        None => {
            payload.set_source(ProgressSource::Heartbeat);
            format!("Waiting for a pull slot for image {image:?} ({waited})")
        }
        Some(p) if p.measured => {
            payload.set_source(ProgressSource::Containerd);
            payload.bytes_done = p.bytes_done;
            payload.bytes_total = p.bytes_total;
            payload.layers_done = p.layers_done;
            payload.layers_total = p.layers_total;
            if p.layers_total == 0 {
                format!("Pulling image {image:?}: resolving ({waited})")
            } else {
                format!(
                    "Pulling image {image:?}: {} of {}, {} of {} layers",
                    mib(p.bytes_done),
                    mib(p.bytes_total),
                    p.layers_done,
                    p.layers_total
                )
            }
        }
        Some(_) => {
            payload.set_source(ProgressSource::Heartbeat);
            format!("Pulling image {image:?} ({waited})")
        }
    };
    (payload, message)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) async fn emit_present(
    sink: &EventSink,
    cref: &ContainerRef,
    image: &str,
    found: &cri::Image,
    took: Duration,
) {
    sink.emit(
        StartEvent::at(
            Step::Image,
            "Pulled",
            format!("Container image {image:?} already present on machine"),
        )
        .of(cref)
        .took(took)
        .with(Payload::Image(ImageInfo {
            image: image.to_string(),
            image_ref: found.id.clone(),
            size_bytes: found.size,
            already_present: true,
        })),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_messages() {
        let p = Progress {
            bytes_done: 3 * 1024 * 1024,
            bytes_total: 20 * 1024 * 1024,
            layers_done: 1,
            layers_total: 4,
            measured: true,
        };
        let (payload, msg) = progress_payload("r/x:1", Some(&p), Duration::from_secs(2));
        assert_eq!(
            msg,
            "Pulling image \"r/x:1\": 3.0 MiB of 20.0 MiB, 1 of 4 layers"
        );
        assert_eq!(payload.source(), ProgressSource::Containerd);
        assert_eq!(payload.layers_total, 4);
        let (hb, msg) =
            progress_payload("r/x:1", Some(&Progress::default()), Duration::from_secs(3));
        assert_eq!(msg, "Pulling image \"r/x:1\" (3s)");
        assert_eq!(hb.source(), ProgressSource::Heartbeat);
        let (q, _) = progress_payload("r/x:1", None, Duration::from_secs(3));
        assert!(q.queued);
    }
}
