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
//!   HTTP GET of hooks and probes; `probe.rs`: one probe run; `grpc_health.rs`:
//!   gRPC probes; `probing.rs`: probes after the start; `sidecar.rs`:
//!   sidecars and their startup gating; `restart.rs`: restartPolicy
//!   decisions; `backoff.rs`: the crash-loop back-off; `watch.rs`: waiting
//!   for exits (through the node's watcher, `pleg/`); `termination.rs`:
//!   termination messages; `ephemeral.rs`: StartContainer; `supervise.rs`:
//!   restarts after the start; `recover.rs`: taking up the node's pods when
//!   podstart starts; `stop.rs`: StopPod; `events.rs`: event construction
//!   and delivery; `replay.rs`: the record of a request's events for callers
//!   that attach to it; `attach.rs`: a StartPod meeting a start of its pod
//!   in flight; `error.rs`: failures and how they are reported.
mod adopt;
mod ahead;
pub mod attach;
pub mod backoff;
mod container;
mod context;
mod ephemeral;
mod error;
pub mod events;
mod grpc_health;
mod hooks;
mod http;
mod image;
mod pod;
mod precreate;
mod prepull;
mod probe;
mod probing;
mod recover;
pub mod replay;
pub mod restart;
mod runtime;
mod sidecar;
mod stop;
mod supervise;
pub mod termination;
mod volumes;
mod watch;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use tokio::sync::broadcast;

pub use error::StartError;
pub use events::{ContainerRef, EventSink};
pub use recover::Recovered;

use crate::cri::Cri;
use crate::images::{PullBackoff, Puller, PullerConfig};
use crate::node::Node;
use crate::pleg::{Pleg, PlegConfig};
use crate::proto::v1::StartEvent;
use crate::state::{
    PodLocks, inflight::InFlight, ledger::Ledger, readiness::Readiness, sandboxes::NodeSandboxes,
};
use crate::telemetry::Metrics;

/// The start flow's own settings, with the kubelet's defaults. The puller
/// and the back-offs have theirs (see `Parts`).
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Root of pod log directories (`<root>/<ns>_<name>_<uid>`).
    pub pod_log_root: PathBuf,
    /// Limit for exec and HTTP lifecycle hooks; zero means none, as in the
    /// kubelet (whose exec hooks run without a deadline).
    pub hook_timeout: Duration,
    /// Root of per-pod state (`<root>/<uid>/containers/<name>/<file>`:
    /// termination message files), the kubelet's pod directories.
    pub pod_state_root: PathBuf,
    /// Root of pod volumes (`<root>/<uid>/<volume name>`, `volumes/`).
    pub pod_volume_root: PathBuf,
    /// The node podstart runs on (name, IPs, allocatable amounts, OOM
    /// floor).
    pub node: Arc<Node>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            pod_log_root: PathBuf::from("/var/log/pods"),
            hook_timeout: Duration::ZERO,
            pod_state_root: PathBuf::from("/var/lib/podstart/pods"),
            pod_volume_root: PathBuf::from("/var/lib/podstart/volumes"),
            node: Arc::new(Node::default()),
        }
    }
}

/// The kubelet's first and largest back-off delay, for crash loops and
/// failed pulls alike (10 s, 300 s).
pub const KUBELET_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(300));

/// The puller's defaults: no limit on parallel pulls, a stalled pull
/// cancelled after 5 minutes, progress sampled every 500 ms, heartbeats
/// only (no content service).
pub const DEFAULT_PULLER: PullerConfig = PullerConfig {
    max_parallel: 0,
    stall_timeout: Duration::from_secs(300),
    sample_interval: Duration::from_millis(500),
    content_endpoint: None,
};

/// What a `Starter` is made of, each part already built with its own
/// settings: the composition root (`server.rs`) builds them from the
/// command line.
#[derive(Debug)]
pub struct Parts {
    pub cri: Cri,
    pub config: FlowConfig,
    pub metrics: Metrics,
    /// The node's image puller (single-flight, bounded).
    pub puller: Puller,
    /// The per-(pod, image) back-off after failed pulls.
    pub pull_backoff: PullBackoff,
    /// The crash-loop back-off of restarted containers.
    pub crash_loop: backoff::CrashLoopBackoff,
    /// How the node's containers are watched (`Starter::new` starts the
    /// watcher).
    pub pleg: PlegConfig,
}

impl Parts {
    /// `config` with every other part at its defaults; tests and benches
    /// replace the parts they tune.
    pub fn with_defaults(cri: Cri, config: FlowConfig, metrics: Metrics) -> Parts {
        let (initial, max) = KUBELET_BACKOFF;
        Parts {
            puller: Puller::new(cri.clone(), DEFAULT_PULLER),
            pull_backoff: PullBackoff::new(initial, max),
            crash_loop: backoff::CrashLoopBackoff::new(initial, max),
            pleg: PlegConfig::default(),
            cri,
            config,
            metrics,
        }
    }
}

/// Carries out StartPod and StopPod requests against one runtime.
#[derive(Clone)]
pub struct Starter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Starter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starter")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cri: Cri,
    config: FlowConfig,
    metrics: Metrics,
    locks: PodLocks,
    /// The StartPods in flight, for identical ones to attach to.
    in_flight: InFlight<EventSink>,
    /// What the node's pods request, for admission.
    ledger: Ledger,
    /// Which pods certainly have no sandbox on the node.
    sandboxes: NodeSandboxes,
    bus: broadcast::Sender<StartEvent>,
    /// Crash-loop back-off, shared by every request.
    backoff: backoff::CrashLoopBackoff,
    /// The node's one container watcher.
    pleg: Pleg,
    /// The restart supervisor of each started pod, by uid.
    supervisors: Mutex<HashMap<String, CancellationToken>>,
    /// Fires at shutdown; supervisors end with it.
    shutdown: CancellationToken,
    /// Which containers the probes found ready.
    readiness: Readiness,
    puller: Puller,
    pull_backoff: PullBackoff,
}

/// How many events the node-wide feed buffers for slow watchers.
const BUS_CAPACITY: usize = 1024;

impl Starter {
    /// Builds the starter and starts the node's container watcher on the
    /// current Tokio runtime.
    pub fn new(parts: Parts) -> Starter {
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let Parts {
            cri,
            config,
            metrics,
            puller,
            pull_backoff,
            crash_loop,
            pleg,
        } = parts;
        let pleg = Pleg::start(cri.clone(), pleg, metrics.clone());
        Starter {
            inner: Arc::new(Inner {
                cri,
                puller,
                pull_backoff,
                config,
                metrics,
                locks: PodLocks::default(),
                in_flight: InFlight::default(),
                ledger: Ledger::default(),
                sandboxes: NodeSandboxes::default(),
                bus,
                backoff: crash_loop,
                pleg,
                supervisors: Mutex::default(),
                shutdown: CancellationToken::new(),
                readiness: Readiness::default(),
            }),
        }
    }

    pub fn cri(&self) -> &Cri {
        &self.inner.cri
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn config(&self) -> &FlowConfig {
        &self.inner.config
    }

    /// What the node's pods request together (admitted starts included).
    pub fn requested(&self) -> crate::node::Amounts {
        self.inner.ledger.used()
    }

    /// Which containers are ready (GetPod and ListPods fill theirs in from
    /// it).
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// The node's container watcher.
    pub fn pleg(&self) -> &Pleg {
        &self.inner.pleg
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
