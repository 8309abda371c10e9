//! The node's image puller. Every PullImage goes through it:
//! - single-flight: requests for the same image with the same credentials
//!   share one PullImage; each requester holds a [`Ticket`] and reads the
//!   shared state (queued, progress, result) to tell its own story;
//! - a node-wide limit on pulls in flight (0 = none, 1 = serialized, as the
//!   kubelet's `maxParallelImagePulls` / `serializeImagePulls`), in arrival
//!   order;
//! - credentials tried in keyring order until one works;
//! - progress sampling while the pull runs, and cancellation of a pull whose
//!   measured progress stalls.
//!
//! A pull nobody waits for any more is cancelled (the last ticket dropped
//! aborts it). No events here: the start flow turns tickets into events.
use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher, RandomState},
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use k8s_cri::v1 as cri;
use tokio::{
    sync::{OnceCell, Semaphore, watch},
    time::Instant,
};
use tokio_util::task::AbortOnDropHandle;

use super::content::ContentClient;
use super::failure::{Attempt, PullError};
use super::progress::{Claims, Probe, Progress, StallDetector};
use crate::cri::Cri;
use crate::endpoint::{self, Address, Peer};
use crate::proto::v1::RegistryCredential;
use crate::spec::image::ImageRef;

/// The puller's settings.
#[derive(Debug, Clone)]
pub struct PullerConfig {
    /// Pulls in flight on the node at most; 0 for no limit.
    pub max_parallel: usize,
    /// Cancel a pull whose measured progress stands still this long; zero
    /// for never.
    pub stall_timeout: Duration,
    /// How often progress is sampled.
    pub sample_interval: Duration,
    /// containerd's socket, for progress; `None` for heartbeats only.
    pub content_endpoint: Option<Address>,
}

/// What to pull.
#[derive(Clone)]
pub struct PullSpec {
    /// The reference as the CRI gets it (default tag applied).
    pub image: String,
    pub parsed: ImageRef,
    /// The credentials that apply, in keyring order.
    pub credentials: Vec<RegistryCredential>,
    pub sandbox_config: Option<cri::PodSandboxConfig>,
}

/// Never prints a credential: only the servers they are for.
impl std::fmt::Debug for PullSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<&str> = self.credentials.iter().map(|c| c.server.as_str()).collect();
        f.debug_struct("PullSpec")
            .field("image", &self.image)
            .field("parsed", &self.parsed)
            .field("credentials_for", &servers)
            .field("sandbox_config", &self.sandbox_config)
            .finish()
    }
}

/// A finished pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image_ref: String,
    /// From ImageStatus after the pull; 0 when unknown.
    pub size: u64,
}

/// What a ticket holder sees.
#[derive(Debug, Clone)]
pub enum FlightState {
    /// Waiting for a slot under the parallel limit.
    Queued,
    Running(Progress),
    Done(Result<Pulled, Arc<PullError>>),
}

struct Flight {
    id: u64,
    state: watch::Receiver<FlightState>,
    _task: AbortOnDropHandle<()>,
}

/// One requester's share of a pull.
pub struct Ticket {
    flight: Arc<Flight>,
    /// This requester joined a pull already in flight.
    pub joined: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("pull_id", &self.flight.id)
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// Identifies the PullImage this ticket shares (for back-off
    /// bookkeeping).
    pub fn pull_id(&self) -> u64 {
        self.flight.id
    }

    /// The shared state, to read and to wait on.
    pub fn state(&self) -> watch::Receiver<FlightState> {
        self.flight.state.clone()
    }
}

#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cri: Cri,
    config: PullerConfig,
    slots: Option<Arc<Semaphore>>,
    flights: Mutex<HashMap<u64, Weak<Flight>>>,
    keys: RandomState,
    next_id: AtomicU64,
    probe: OnceCell<Probe>,
    claims: Claims,
}

impl Puller {
    pub fn new(cri: Cri, config: PullerConfig) -> Puller {
        let slots =
            (config.max_parallel > 0).then(|| Arc::new(Semaphore::new(config.max_parallel)));
        Puller {
            inner: Arc::new(Inner {
                cri,
                config,
                slots,
                flights: Mutex::new(HashMap::new()),
                keys: RandomState::new(),
                next_id: AtomicU64::new(1),
                probe: OnceCell::new(),
                claims: Claims::default(),
            }),
        }
    }

    pub fn config(&self) -> &PullerConfig {
        &self.inner.config
    }

    /// Joins the pull of `spec` in flight, or starts one.
    pub fn pull(&self, spec: PullSpec) -> Ticket {
        let key = self.inner.key(&spec);
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(&key).and_then(Weak::upgrade) {
            return Ticket {
                flight,
                joined: true,
            };
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(FlightState::Queued);
        let task = tokio::spawn(fly(Arc::clone(&self.inner), key, id, spec, tx));
        let flight = Arc::new(Flight {
            id,
            state: rx,
            _task: AbortOnDropHandle::new(task),
        });
        flights.insert(key, Arc::downgrade(&flight));
        Ticket {
            flight,
            joined: false,
        }
    }
}

impl Inner {
    /// The single-flight key: the image and every field of every credential
    /// that applies, hashed with a per-process random key (nothing
    /// recoverable is kept).
    fn key(&self, spec: &PullSpec) -> u64 {
        let mut h = self.keys.build_hasher();
        spec.image.hash(&mut h);
        for c in &spec.credentials {
            (
                &c.server,
                &c.username,
                &c.password,
                &c.auth,
                &c.identity_token,
                &c.registry_token,
            )
                .hash(&mut h);
        }
        h.finish()
    }

    fn forget(&self, key: u64, id: u64) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(&key)
            .and_then(Weak::upgrade)
            .is_none_or(|f| f.id == id)
        {
            flights.remove(&key);
        }
    }

    /// containerd (and its content service reachable by socket) or not,
    /// decided at the first pull.
    async fn probe(&self) -> Probe {
        self.probe
            .get_or_init(|| async {
                let containerd = matches!(
                    self.cri.version().await,
                    Ok(v) if v.runtime_name == "containerd"
                );
                match (&self.config.content_endpoint, containerd) {
                    (Some(addr), true) => match endpoint::channel(addr, Peer::Content) {
                        Ok(ch) => Probe::Containerd(ContentClient::new(ch)),
                        Err(e) => {
                            tracing::warn!(error = %e, "no pull progress: content service endpoint");
                            Probe::Heartbeat
                        }
                    },
                    _ => Probe::Heartbeat,
                }
            })
            .await
            .clone()
    }
}

/// One PullImage with its queueing, sampling and stall rule.
async fn fly(inner: Arc<Inner>, key: u64, id: u64, spec: PullSpec, tx: watch::Sender<FlightState>) {
    let _slot = match &inner.slots {
        Some(s) => Arc::clone(s).acquire_owned().await.ok(),
        None => None,
    };
    tx.send_replace(FlightState::Running(Progress::default()));
    let probe = inner.probe().await;
    let mut watch = probe.watch(&spec.parsed, Arc::clone(&inner.claims));
    let mut stall = StallDetector::new(inner.config.stall_timeout, Instant::now());
    let mut tick = tokio::time::interval(inner.config.sample_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pull = pull_with_credentials(&inner.cri, &spec);
    tokio::pin!(pull);
    let result = loop {
        tokio::select! {
            r = &mut pull => break r,
            _ = tick.tick() => {
                let p = watch.sample().await;
                tracing::trace!(image = %spec.image, ?p, "pull progress");
                if let Some(after) = stall.observe(&p, Instant::now()) {
                    // Dropping the call cancels the pull in the runtime.
                    break Err(PullError::Stalled {
                        after,
                        bytes_done: p.bytes_done,
                        bytes_total: p.bytes_total,
                    });
                }
                tx.send_replace(FlightState::Running(p));
            }
        }
    };
    drop(watch);
    let result = match result {
        Ok(image_ref) => {
            // Size is best effort, as in the kubelet.
            let size = inner
                .cri
                .image_status(&spec.image)
                .await
                .ok()
                .flatten()
                .map_or(0, |i| i.size);
            Ok(Pulled { image_ref, size })
        }
        Err(e) => Err(Arc::new(e)),
    };
    // Later requests start a new pull.
    inner.forget(key, id);
    tx.send_replace(FlightState::Done(result));
}

/// Tries each credential in turn until one works; anonymous when none
/// applies. Every failure is kept, in order.
async fn pull_with_credentials(cri: &Cri, spec: &PullSpec) -> Result<String, PullError> {
    if spec.credentials.is_empty() {
        return cri
            .pull_image(&spec.image, None, spec.sandbox_config.clone())
            .await
            .map_err(|error| PullError::Runtime {
                attempts: vec![Attempt {
                    server: String::new(),
                    error,
                }],
            });
    }
    let mut attempts = Vec::new();
    for cred in &spec.credentials {
        match cri
            .pull_image(
                &spec.image,
                Some(auth_config(cred)),
                spec.sandbox_config.clone(),
            )
            .await
        {
            Ok(r) => return Ok(r),
            Err(error) => attempts.push(Attempt {
                server: cred.server.clone(),
                error,
            }),
        }
    }
    Err(PullError::Runtime { attempts })
}

/// The CRI's AuthConfig for a credential. containerd 1.6 parses
/// `server_address` as a URL: a bare `host:port` fails to parse there, so a
/// scheme is added when none is given.
pub fn auth_config(c: &RegistryCredential) -> cri::AuthConfig {
    let server_address = if c.server.is_empty() || c.server.contains("://") {
        c.server.clone()
    } else {
        format!("https://{}", c.server)
    };
    cri::AuthConfig {
        username: c.username.clone(),
        password: c.password.clone(),
        auth: c.auth.clone(),
        server_address,
        identity_token: c.identity_token.clone(),
        registry_token: c.registry_token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_spec_debug_names_servers_only() {
        let spec = PullSpec {
            image: "r.example/app:1".into(),
            parsed: crate::spec::image::parse_image("r.example/app:1").unwrap(),
            credentials: vec![RegistryCredential {
                server: "r.example".into(),
                username: "user-name".into(),
                password: "hunter2".into(),
                auth: "dXNlci1uYW1lOmh1bnRlcjI=".into(),
                identity_token: "id-token".into(),
                registry_token: "reg-token".into(),
            }],
            sandbox_config: None,
        };
        let printed = format!("{spec:?}");
        assert!(printed.contains("r.example"), "{printed}");
        for secret in [
            "user-name",
            "hunter2",
            "dXNlci1uYW1l",
            "id-token",
            "reg-token",
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
