//! One CRI call as the stack's layers see it: which operation, its deadline,
//! which attempt, and a way to send it (again). The reply is type-erased so
//! one tower stack serves every call; the typed client methods restore it.
use std::{any::Any, fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;

/// A CRI reply, as the layers pass it through.
pub type Reply = Box<dyn Any + Send>;

type Invoke = dyn Fn() -> BoxFuture<'static, Result<Reply, tonic::Status>> + Send + Sync;

/// The CRI operations podstart makes, named as the kubelet's
/// `operation_type` metric label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Version,
    Status,
    RunPodSandbox,
    StopPodSandbox,
    RemovePodSandbox,
    PodSandboxStatus,
    ListPodSandbox,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
    ContainerStatus,
    ListContainers,
    ExecSync,
    ImageStatus,
    PullImage,
    RemoveImage,
    GetContainerEvents,
}

/// What may be retried after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: retried after a connection failure, UNAVAILABLE or a timeout.
    Read,
    /// Writes the CRI defines as idempotent (stop, remove): like reads.
    Idempotent,
    /// Retried only when the request cannot have reached the runtime (the
    /// connection failed): a second StartContainer or PullImage after an
    /// uncertain failure is the caller's decision.
    ConnectOnly,
    /// Never retried here: RunPodSandbox and CreateContainer create named
    /// objects; after an uncertain failure the start flow looks the object
    /// up and adopts or removes it.
    Never,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Version => "version",
            Operation::Status => "status",
            Operation::RunPodSandbox => "run_podsandbox",
            Operation::StopPodSandbox => "stop_podsandbox",
            Operation::RemovePodSandbox => "remove_podsandbox",
            Operation::PodSandboxStatus => "podsandbox_status",
            Operation::ListPodSandbox => "list_podsandbox",
            Operation::CreateContainer => "create_container",
            Operation::StartContainer => "start_container",
            Operation::StopContainer => "stop_container",
            Operation::RemoveContainer => "remove_container",
            Operation::ContainerStatus => "container_status",
            Operation::ListContainers => "list_containers",
            Operation::ExecSync => "exec_sync",
            Operation::ImageStatus => "image_status",
            Operation::PullImage => "pull_image",
            Operation::RemoveImage => "remove_image",
            Operation::GetContainerEvents => "get_container_events",
        }
    }

    pub fn retry(self) -> Retry {
        match self {
            Operation::Version
            | Operation::Status
            | Operation::PodSandboxStatus
            | Operation::ListPodSandbox
            | Operation::ContainerStatus
            | Operation::ListContainers
            | Operation::ImageStatus
            | Operation::GetContainerEvents => Retry::Read,
            Operation::StopPodSandbox
            | Operation::RemovePodSandbox
            | Operation::StopContainer
            | Operation::RemoveContainer
            | Operation::RemoveImage => Retry::Idempotent,
            Operation::StartContainer | Operation::ExecSync | Operation::PullImage => {
                Retry::ConnectOnly
            }
            Operation::RunPodSandbox | Operation::CreateContainer => Retry::Never,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A call travelling through the stack.
#[derive(Clone)]
pub struct CriCall {
    pub op: Operation,
    /// None: no deadline (PullImage, ExecSync without timeout).
    pub deadline: Option<Duration>,
    /// 1 for the first try; the retry layer counts up.
    pub attempt: u32,
    invoke: Arc<Invoke>,
}

impl CriCall {
    pub fn new(
        op: Operation,
        deadline: Option<Duration>,
        invoke: impl Fn() -> BoxFuture<'static, Result<Reply, tonic::Status>> + Send + Sync + 'static,
    ) -> CriCall {
        CriCall {
            op,
            deadline,
            attempt: 1,
            invoke: Arc::new(invoke),
        }
    }

    /// Sends the request to the runtime.
    pub fn send(&self) -> BoxFuture<'static, Result<Reply, tonic::Status>> {
        (self.invoke)()
    }
}

impl fmt::Debug for CriCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CriCall")
            .field("op", &self.op)
            .field("deadline", &self.deadline)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
