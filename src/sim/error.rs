//! The simulated runtime's failures, each one named: `SimError` for the server itself (binding,
//! addresses, signals, serving) and `CallError` for one CRI call. `From<CallError> for Status` is the
//! only place a call failure gets its gRPC code; the messages follow containerd 1.6 wording so that
//! callers match on the same text against the sim and the real runtime. Nothing here decides *when*
//! a call fails.

use std::io;
use std::path::PathBuf;

use thiserror::Error;
use tonic::{Code, Status};

use super::script::ScriptError;

/// Why the simulated runtime could not start or keep serving.
#[derive(Debug, Error)]
pub enum SimError {
    /// The listen address is neither `unix:///abs/path` nor an absolute path.
    #[error("invalid listen address {address:?}: {reason}")]
    InvalidListenAddress {
        address: String,
        reason: &'static str,
    },
    /// Something other than a unix socket sits where the socket should go; the sim never deletes it.
    #[error("{}: exists and is not a unix socket, refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    /// A stale socket file from an earlier run could not be inspected or removed.
    #[error("removing stale socket {}: {source}", path.display())]
    RemoveStaleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket's parent directory could not be created.
    #[error("creating socket directory {}: {source}", path.display())]
    CreateSocketDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Binding the unix socket failed.
    #[error("binding unix socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Installing the SIGINT/SIGTERM handlers failed.
    #[error("installing signal handler: {0}")]
    Signal(#[source] io::Error),
    /// The gRPC server stopped with an error.
    #[error("serving CRI: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// Why one CRI call failed, worded as containerd words it.
#[derive(Debug, Error)]
pub(crate) enum CallError {
    /// RunPodSandbox without `config.metadata`.
    #[error("sandbox config must include metadata")]
    MissingSandboxMetadata,
    /// CreateContainer without `config.metadata`.
    #[error("container config must include metadata")]
    MissingContainerMetadata,
    /// Another sandbox (possibly a NOTREADY leftover) holds the name.
    #[error("failed to reserve sandbox name {name:?}: name {name:?} is reserved for {holder:?}")]
    SandboxNameReserved { name: String, holder: String },
    /// Another container (possibly an exited leftover) holds the name.
    #[error("failed to reserve container name {name:?}: name {name:?} is reserved for {holder:?}")]
    ContainerNameReserved { name: String, holder: String },
    /// Every address of the pod network is leased.
    #[error(
        "failed to setup network for sandbox {sandbox:?}: no IP addresses available in range set: 10.88.0.2-10.88.255.254"
    )]
    NoPodIp { sandbox: String },
    /// A sandbox call named an unknown sandbox.
    #[error("an error occurred when try to find sandbox {id:?}: not found")]
    SandboxNotFound { id: String },
    /// CreateContainer named an unknown sandbox.
    #[error("failed to find sandbox id {id:?}: not found")]
    ContainerSandboxNotFound { id: String },
    /// A container call named an unknown container.
    #[error("an error occurred when try to find container {id:?}: not found")]
    ContainerNotFound { id: String },
    /// CreateContainer named an image that was never pulled.
    #[error("failed to resolve image {image:?}: not found")]
    ImageNotFound { image: String },
    /// The container's `PODSTART_SIM_*` env does not parse.
    #[error("podstart-sim: {0}")]
    Script(#[from] ScriptError),
    /// StartContainer on a container that is not CREATED.
    #[error("failed to set starting state for container {id:?}: container is in {state} state")]
    NotStartable { id: String, state: &'static str },
    /// StartContainer in a sandbox that was stopped.
    #[error("sandbox container {sandbox:?} is not running")]
    SandboxNotRunning { sandbox: String },
    /// StartContainer failed as scripted by `PODSTART_SIM_START_ERROR`.
    #[error("{message}")]
    StartFailed { message: String },
    /// ExecSync in a container that is not RUNNING.
    #[error("failed to exec in container: container is in {state} state")]
    ExecNotRunning { state: &'static str },
    /// ExecSync ran longer than its timeout; `timeout` is Go-formatted (`1s`, `1m30s`).
    #[error("failed to exec in container: timeout {timeout} exceeded")]
    ExecTimeout { timeout: String },
    /// PullImage with an empty or unparsable reference.
    #[error("failed to parse image reference {reference:?}")]
    InvalidImageReference { reference: String },
    /// The simulated registry has no such image (name contains `does-not-exist`).
    #[error(
        "failed to pull and unpack image {image:?}: failed to resolve reference {image:?}: {image}: not found"
    )]
    ImageNotInRegistry { image: String },
    /// The simulated registry wants credentials (name contains `needs-auth`) and got none.
    #[error(
        "failed to pull and unpack image {image:?}: failed to resolve reference {image:?}: pulling from host {host} failed with status code [manifests {tag}]: 401 Unauthorized"
    )]
    RegistryUnauthorized {
        image: String,
        host: String,
        tag: String,
    },
    /// The simulated registry cannot be reached (name contains `registry-down`).
    #[error(
        "failed to pull and unpack image {image:?}: failed to resolve reference {image:?}: failed to do request: Head \"https://{host}/v2/\": dial tcp {host}: connect: connection refused"
    )]
    RegistryUnreachable { image: String, host: String },
    /// A GetContainerEvents subscriber fell too far behind; the stream ends so it can re-list.
    #[error("podstart-sim: container event stream lagged, {missed} events dropped")]
    EventsLagged { missed: u64 },
    /// A CRI method the sim does not model.
    #[error("podstart-sim: {op} is not simulated")]
    NotSimulated { op: &'static str },
}

impl From<CallError> for Status {
    fn from(err: CallError) -> Self {
        let code = match &err {
            CallError::MissingSandboxMetadata
            | CallError::MissingContainerMetadata
            | CallError::SandboxNameReserved { .. }
            | CallError::ContainerNameReserved { .. }
            | CallError::NoPodIp { .. }
            | CallError::NotStartable { .. }
            | CallError::SandboxNotRunning { .. }
            | CallError::StartFailed { .. }
            | CallError::ExecNotRunning { .. }
            | CallError::InvalidImageReference { .. }
            | CallError::RegistryUnauthorized { .. }
            | CallError::RegistryUnreachable { .. } => Code::Unknown,
            CallError::SandboxNotFound { .. }
            | CallError::ContainerSandboxNotFound { .. }
            | CallError::ContainerNotFound { .. }
            | CallError::ImageNotFound { .. }
            | CallError::ImageNotInRegistry { .. } => Code::NotFound,
            CallError::Script(_) => Code::InvalidArgument,
            CallError::ExecTimeout { .. } => Code::DeadlineExceeded,
            CallError::EventsLagged { .. } => Code::ResourceExhausted,
            CallError::NotSimulated { .. } => Code::Unimplemented,
        };
        Status::new(code, err.to_string())
    }
}
