//! The start flow: the kubelet's SyncPod steps for a new pod (sandbox,
//! ephemeral, init, sidecar and app containers) and its startContainer steps
//! for each container, plus the stop flow. Every step emits an event; every
//! request ends with exactly one terminal event.
//!
//! - `pod.rs`: sandbox and ordering; `container.rs`: the four steps of one
//!   container; `context.rs`: the per-request types the steps share;
//!   `image.rs`: pull policy, credentials, pulling; `prepull.rs`: every
//!   image of a pod started at once, and the image step as a container
//!   runs it; `adopt.rs`: creates whose outcome is uncertain; `runtime.rs`:
//!   shared CRI look-ups; `hooks.rs`: lifecycle handlers; `http.rs`: the
//!   HTTP GET of hooks and probes; `probe.rs`: one probe run; `sidecar.rs`:
//!   sidecars and their startup gating; `restart.rs`: restartPolicy
//!   decisions; `backoff.rs`: the crash-loop back-off; `watch.rs`: waiting
//!   for exits; `termination.rs`: termination messages; `ephemeral.rs`:
//!   StartContainer; `supervise.rs`: restarts after the start; `stop.rs`:
//!   StopPod; `events.rs`: event construction and delivery; `error.rs`:
//!   failures and how they are reported.
mod adopt;
pub mod backoff;
mod container;
mod context;
mod ephemeral;
mod error;
pub mod events;
mod hooks;
mod http;
mod image;
mod pod;
mod prepull;
mod probe;
pub mod restart;
mod runtime;
mod sidecar;
mod stop;
mod supervise;
pub mod termination;
mod watch;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use tokio::sync::broadcast;

pub use error::StartError;
pub use events::{ContainerRef, EventSink};

use crate::cri::{Address, Cri};
use crate::images::{PullBackoff, Puller, PullerConfig};
use crate::proto::v1::StartEvent;
use crate::state::PodLocks;
use crate::telemetry::Metrics;

/// Tunables of the start flow, with the kubelet's defaults.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Root of pod log directories (`<root>/<ns>_<name>_<uid>`).
    pub pod_log_root: PathBuf,
    /// Limit for exec and HTTP lifecycle hooks; zero means none, as in the
    /// kubelet (whose exec hooks run without a deadline).
    pub hook_timeout: Duration,
    /// First crash-loop back-off delay (the kubelet's 10 s).
    pub restart_backoff_initial: Duration,
    /// Largest crash-loop back-off delay (the kubelet's 300 s).
    pub restart_backoff_max: Duration,
    /// Longest pause between two status polls while waiting for an init
    /// container to exit.
    pub status_poll_max: Duration,
    /// Root of per-pod state (`<root>/<uid>/containers/<name>/<file>`:
    /// termination message files), the kubelet's pod directories.
    pub pod_state_root: PathBuf,
    /// First back-off after a failed pull of an image for a pod.
    pub image_pull_backoff_initial: Duration,
    /// Largest such back-off.
    pub image_pull_backoff_max: Duration,
    /// Pulls in flight on the node at most; 0 for no limit, 1 serializes
    /// pulls (the kubelet's default `serializeImagePulls`).
    pub max_parallel_image_pulls: usize,
    /// A pull whose measured progress stands still this long is cancelled;
    /// zero for never.
    pub image_pull_stall_timeout: Duration,
    /// Pull progress is sampled, and PullProgress events sent, at most this
    /// often.
    pub image_pull_progress_interval: Duration,
    /// containerd's socket, read for pull progress (its content service);
    /// `None` for heartbeats only.
    pub content_endpoint: Option<Address>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            pod_log_root: PathBuf::from("/var/log/pods"),
            hook_timeout: Duration::ZERO,
            restart_backoff_initial: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
            status_poll_max: Duration::from_secs(1),
            pod_state_root: PathBuf::from("/var/lib/podstart/pods"),
            image_pull_backoff_initial: Duration::from_secs(10),
            image_pull_backoff_max: Duration::from_secs(300),
            max_parallel_image_pulls: 0,
            image_pull_stall_timeout: Duration::from_secs(300),
            image_pull_progress_interval: Duration::from_millis(500),
            content_endpoint: None,
        }
    }
}

/// Carries out StartPod and StopPod requests against one runtime.
#[derive(Clone)]
pub struct Starter {
    inner: Arc<Inner>,
}

struct Inner {
    cri: Cri,
    config: FlowConfig,
    metrics: Metrics,
    locks: PodLocks,
    bus: broadcast::Sender<StartEvent>,
    /// Crash-loop back-off, shared by every request.
    backoff: backoff::CrashLoopBackoff,
    /// Set once the runtime answered GetContainerEvents with UNIMPLEMENTED.
    events_unsupported: AtomicBool,
    /// The restart supervisor of each started pod, by uid.
    supervisors: Mutex<HashMap<String, CancellationToken>>,
    /// Fires at shutdown; supervisors end with it.
    shutdown: CancellationToken,
    puller: Puller,
    pull_backoff: PullBackoff,
}

/// How many events the node-wide feed buffers for slow watchers.
const BUS_CAPACITY: usize = 1024;

impl Starter {
    pub fn new(cri: Cri, config: FlowConfig, metrics: Metrics) -> Starter {
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let backoff = backoff::CrashLoopBackoff::new(
            config.restart_backoff_initial,
            config.restart_backoff_max,
        );
        let puller = Puller::new(
            cri.clone(),
            PullerConfig {
                max_parallel: config.max_parallel_image_pulls,
                stall_timeout: config.image_pull_stall_timeout,
                sample_interval: config.image_pull_progress_interval,
                content_endpoint: config.content_endpoint.clone(),
            },
        );
        let pull_backoff = PullBackoff::new(
            config.image_pull_backoff_initial,
            config.image_pull_backoff_max,
        );
        Starter {
            inner: Arc::new(Inner {
                cri,
                puller,
                pull_backoff,
                config,
                metrics,
                locks: PodLocks::default(),
                bus,
                backoff,
                events_unsupported: AtomicBool::new(false),
                supervisors: Mutex::default(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn cri(&self) -> &Cri {
        &self.inner.cri
    }

    pub fn config(&self) -> &FlowConfig {
        &self.inner.config
    }

    /// The node-wide event feed.
    pub fn subscribe(&self) -> broadcast::Receiver<StartEvent> {
        self.inner.bus.subscribe()
    }

    pub fn bus(&self) -> broadcast::Sender<StartEvent> {
        self.inner.bus.clone()
    }

    /// Asks every request in progress to stop (shutdown).
    pub fn cancel_all(&self) {
        self.inner.shutdown.cancel();
        self.inner.locks.cancel_all();
    }
}
