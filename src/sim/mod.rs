//! podstart's simulated CRI runtime: a real gRPC server (CRI v1 RuntimeService and ImageService on
//! a unix socket) whose node lives in memory, for fast integration tests, benchmarks and trying
//! podstart without containerd. It follows containerd 1.6's answers (codes and message wording);
//! containers are scripted through their env (`PODSTART_SIM_*`, see `script.rs`).
//!
//! This file holds the handle (`SimRuntime`), its configuration, the serving entry points and the
//! observation API tests use. It must not hold CRI semantics; those live in `state.rs`.

mod error;
mod faults;
mod image;
mod journal;
mod network;
mod registry;
mod runtime;
mod script;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

pub use error::SimError;
pub use faults::{Fault, Faults};
pub use script::{EXIT_CODE_ENV, RUN_MS_ENV, START_ERROR_ENV};

use journal::Journal;
use state::Store;

/// `runtime_name` the sim reports in Version.
pub const RUNTIME_NAME: &str = "podstart-sim";

/// How the simulated runtime behaves.
#[derive(Clone, Default)]
pub struct SimConfig {
    /// Added to every CRI call before it is answered. Default: none.
    pub latency: Duration,
    /// Images present from the start (normalised like PullImage; invalid names are skipped).
    pub preloaded_images: Vec<String>,
    /// Faults in force from the start, by CRI method name.
    pub faults: Vec<(String, Fault)>,
    /// GetContainerEvents answers UNIMPLEMENTED, as containerd before 1.7 does.
    pub no_container_events: bool,
    /// How long every PullImage takes (on top of `latency`). Default: none.
    pub pull_delay: Duration,
    /// When set, images whose name contains `needs-auth` accept only this (username, password),
    /// given as such or as `auth` (base64 `user:password`); otherwise any credential will do.
    pub registry_credentials: Option<(String, String)>,
}

/// Prints the registry username, never the password.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SimConfig {
            latency,
            preloaded_images,
            faults,
            no_container_events,
            pull_delay,
            registry_credentials,
        } = self;
        let registry_user = registry_credentials.as_ref().map(|(user, _)| user);
        f.debug_struct("SimConfig")
            .field("latency", latency)
            .field("preloaded_images", preloaded_images)
            .field("faults", faults)
            .field("no_container_events", no_container_events)
            .field("pull_delay", pull_delay)
            .field("registry_user", &registry_user)
            .finish_non_exhaustive()
    }
}

/// A simulated CRI runtime. Cheap to clone; clones share one node.
#[derive(Clone)]
pub struct SimRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    store: Arc<Store>,
    journal: Journal,
    faults: Faults,
    /// Flipped to `true` when a serve loop shuts down, so open event streams end and the server
    /// can drain.
    closing: watch::Sender<bool>,
}

impl SimRuntime {
    /// A runtime with an empty node (plus `config.preloaded_images`).
    pub fn new(config: SimConfig) -> Self {
        let images: Vec<String> = config
            .preloaded_images
            .iter()
            .filter_map(|name| match registry::normalise(name) {
                Ok(name) => Some(name),
                Err(err) => {
                    tracing::warn!(image = %name, error = %err, "skipping preloaded image");
                    None
                }
            })
            .collect();
        let (closing, _) = watch::channel(false);
        let faults = Faults::default();
        for (method, fault) in &config.faults {
            faults.set(method, fault.clone());
        }
        SimRuntime {
            inner: Arc::new(Inner {
                store: Store::new(images),
                config,
                journal: Journal::default(),
                faults,
                closing,
            }),
        }
    }

    /// Binds `path` (removing a stale socket first) and serves RuntimeService and ImageService on
    /// it until `shutdown` resolves. The socket file is removed afterwards.
    pub async fn serve_unix(
        self,
        path: &Path,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SimError> {
        let listener = Self::bind_unix(path)?;
        tracing::info!(socket = %path.display(), "podstart-sim serving CRI");
        let served = self.serve_unix_listener(listener, shutdown).await;
        if let Err(err) = std::fs::remove_file(path) {
            tracing::debug!(socket = %path.display(), error = %err, "socket not removed");
        }
        served
    }

    /// Binds a unix socket at `path` the way `serve_unix` does: creates the parent directory,
    /// removes a stale socket file, refuses to remove anything that is not a socket. Call it inside
    /// a tokio runtime; once it returns, clients can connect (calls wait until serving starts).
    pub fn bind_unix(path: &Path) -> Result<UnixListener, SimError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|source| SimError::RemoveStaleSocket {
                    path: path.to_owned(),
                    source,
                })?;
            }
            Ok(_) => {
                return Err(SimError::NotASocket {
                    path: path.to_owned(),
                });
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SimError::RemoveStaleSocket {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SimError::CreateSocketDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        UnixListener::bind(path).map_err(|source| SimError::Bind {
            path: path.to_owned(),
            source,
        })
    }

    /// Serves both CRI services on an already bound listener until `shutdown` resolves; then ends
    /// open GetContainerEvents streams and drains in-flight calls.
    pub async fn serve_unix_listener(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SimError> {
        self.inner.closing.send_replace(false);
        let inner = Arc::clone(&self.inner);
        let signal = async move {
            shutdown.await;
            tracing::info!("podstart-sim shutting down");
            inner.closing.send_replace(true);
        };
        Server::builder()
            .layer(faults::FaultLayer::new(self.inner.faults.clone()))
            .add_service(RuntimeServiceServer::new(self.clone()))
            .add_service(ImageServiceServer::new(self))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
            .await
            .map_err(SimError::Serve)
    }

    /// The faults in force; change them at any time.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// How many times the CRI method `op` (e.g. `"PullImage"`, `"RunPodSandbox"`) was called,
    /// failed calls included.
    pub fn calls(&self, op: &str) -> u64 {
        self.inner.journal.calls(op)
    }

    /// The most PullImage calls that were in progress at once.
    pub fn max_concurrent_pulls(&self) -> u64 {
        self.inner.journal.max_concurrent_pulls()
    }

    /// GetContainerEvents streams open now, and the most ever open at once.
    pub fn event_streams(&self) -> (u64, u64) {
        self.inner.journal.event_streams()
    }

    /// Every ExecSync received, in order: (container id, command).
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        self.inner.journal.execs()
    }

    /// The container ids of every StopContainer answered without error, in
    /// the order they were answered.
    pub fn stops(&self) -> Vec<String> {
        self.inner.journal.stops()
    }

    /// The config a container was created with.
    pub fn container_config(&self, id: &str) -> Option<k8s_cri::v1::ContainerConfig> {
        self.inner.store.container_config(id)
    }

    /// Containers the node holds, in any state.
    pub fn container_count(&self) -> usize {
        self.inner.store.container_count()
    }

    /// Sandboxes the node holds, ready or not.
    pub fn sandbox_count(&self) -> usize {
        self.inner.store.sandbox_count()
    }

    /// Pod uids (by the `io.kubernetes.pod.uid` label) that ever had two ready sandboxes, or two
    /// running containers of one name, at once.
    pub fn duplicated_pods(&self) -> Vec<String> {
        self.inner.store.duplicated_pods()
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Start of every CRI method: count it, trace it, wait the configured latency.
    async fn begin(&self, op: &'static str) {
        self.inner.journal.record_call(op);
        tracing::debug!(op, "cri call");
        let latency = self.inner.config.latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

impl fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRuntime")
            .field("config", &self.inner.config)
            .field("sandboxes", &self.sandbox_count())
            .field("containers", &self.container_count())
            .finish()
    }
}

/// `podstart sim-runtime --listen <addr>`: serves a default `SimRuntime` until SIGINT or SIGTERM.
/// `addr` is `unix:///abs/path` or an absolute path.
pub async fn run(listen: &str) -> Result<(), SimError> {
    run_with_config(listen, SimConfig::default()).await
}

/// Like `run`, with a chosen configuration (latency, preloaded images).
pub async fn run_with_config(listen: &str, config: SimConfig) -> Result<(), SimError> {
    let path = parse_listen(listen)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(SimError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(SimError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    };
    SimRuntime::new(config).serve_unix(&path, shutdown).await
}

fn parse_listen(listen: &str) -> Result<PathBuf, SimError> {
    let invalid = |reason| SimError::InvalidListenAddress {
        address: listen.to_owned(),
        reason,
    };
    let path = match listen.split_once("://") {
        Some(("unix", path)) => path,
        Some(_) => return Err(invalid("only unix:// sockets are supported")),
        None => listen,
    };
    if !path.starts_with('/') {
        return Err(invalid("the socket path must be absolute"));
    }
    if path.ends_with('/') {
        return Err(invalid("the socket path names a directory"));
    }
    Ok(PathBuf::from(path))
}

/// Locks a mutex, recovering from poisoning: the sim's tables stay usable after a panicking test.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
