//! StartEvent construction and delivery. Every event goes to the caller's
//! stream (while the caller listens) and to the node-wide bus that
//! WatchEvents reads.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use super::{StartError, termination};
use crate::proto::v1::{
    ContainerExit, ContainerKind, EventType, PodFailed, PodMetadata, StartEvent, Step,
    start_event::Payload,
};

/// Where a request's events go.
#[derive(Clone, Debug)]
pub struct EventSink {
    uid: String,
    name: String,
    namespace: String,
    caller: Option<mpsc::Sender<Result<StartEvent, Status>>>,
    bus: broadcast::Sender<StartEvent>,
}

impl EventSink {
    pub fn new(
        pod: &PodMetadata,
        caller: Option<mpsc::Sender<Result<StartEvent, Status>>>,
        bus: broadcast::Sender<StartEvent>,
    ) -> EventSink {
        EventSink {
            uid: pod.uid.clone(),
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            caller,
            bus,
        }
    }

    /// Stamps the event with the time and the pod, then delivers it. A
    /// caller that went away does not stop the work: the events still reach
    /// the bus and the log.
    pub async fn emit(&self, mut event: StartEvent) {
        event.time_unix_nano = now_unix_nano();
        event.pod_uid.clone_from(&self.uid);
        event.pod_name.clone_from(&self.name);
        event.pod_namespace.clone_from(&self.namespace);
        tracing::info!(
            pod_uid = %event.pod_uid,
            container = %event.container_name,
            step = ?event.step(),
            reason = %event.reason,
            duration_ms = event.duration_micros / 1000,
            "{}",
            event.message
        );
        // No receivers is the normal case for the bus.
        let _ = self.bus.send(event.clone());
        if let Some(tx) = &self.caller
            && tx.send(Ok(event)).await.is_err()
        {
            tracing::debug!(pod_uid = %self.uid, "caller stopped listening; carrying on");
        }
    }
}

impl EventSink {
    /// Like `emit`, for the frequent PullProgress events: logged at debug
    /// level only.
    pub async fn emit_progress(&self, mut event: StartEvent) {
        event.time_unix_nano = now_unix_nano();
        event.pod_uid.clone_from(&self.uid);
        event.pod_name.clone_from(&self.name);
        event.pod_namespace.clone_from(&self.namespace);
        tracing::debug!(
            pod_uid = %event.pod_uid,
            container = %event.container_name,
            "{}",
            event.message
        );
        let _ = self.bus.send(event.clone());
        if let Some(tx) = &self.caller {
            let _ = tx.send(Ok(event)).await;
        }
    }
}

pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// A container's name and kind, as events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    pub kind: ContainerKind,
}

impl ContainerRef {
    pub fn kind_label(&self) -> &'static str {
        kind_label(self.kind)
    }
}

/// The kubelet's `container_type` metric label for a kind.
pub fn kind_label(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::Init | ContainerKind::Sidecar => "init_container",
        ContainerKind::App | ContainerKind::Unspecified => "container",
        ContainerKind::Ephemeral => "ephemeral_container",
    }
}

impl StartEvent {
    /// A Normal event of a pod-level step.
    pub fn at(step: Step, reason: &str, message: impl Into<String>) -> StartEvent {
        let mut e = StartEvent {
            reason: reason.to_string(),
            message: message.into(),
            ..Default::default()
        };
        e.set_step(step);
        e.set_type(EventType::Normal);
        e
    }

    pub fn of(mut self, c: &ContainerRef) -> StartEvent {
        self.container_name.clone_from(&c.name);
        self.set_container_kind(c.kind);
        self
    }

    pub fn took(mut self, d: Duration) -> StartEvent {
        self.duration_micros = micros(d);
        self
    }

    pub fn warning(mut self) -> StartEvent {
        self.set_type(EventType::Warning);
        self
    }

    pub fn with(mut self, payload: Payload) -> StartEvent {
        self.payload = Some(payload);
        self
    }

    /// True for the events that end a stream.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.payload,
            Some(Payload::PodStarted(_) | Payload::PodFailed(_) | Payload::PodStopped(_))
        )
    }
}

/// The event of a container's exit: `Completed` for exit 0, else `Error`
/// (the kubelet's terminated reasons), carrying the exit code, the runtime's
/// reason and the termination message.
pub(super) fn exit_event(
    cref: &ContainerRef,
    id: &str,
    status: &cri::ContainerStatus,
    message: String,
) -> StartEvent {
    let event = StartEvent::at(
        Step::WaitExit,
        if status.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        },
        message,
    )
    .of(cref)
    .with(Payload::Exit(ContainerExit {
        container_id: id.to_string(),
        exit_code: status.exit_code,
        reason: status.reason.clone(),
        message: termination::message(status),
    }));
    if status.exit_code == 0 {
        event
    } else {
        event.warning()
    }
}

/// The PodFailed event for a failure.
pub(super) fn failed_event(e: &StartError) -> StartEvent {
    let container = e.container().unwrap_or_default().to_string();
    let mut event = StartEvent::at(e.step(), e.reason(), e.to_string())
        .warning()
        .with(Payload::PodFailed(PodFailed {
            reason: e.reason().to_string(),
            code: e.code() as i32,
            step: e.step() as i32,
            container_name: container.clone(),
            message: e.to_string(),
        }));
    event.container_name = container;
    event
}

pub(super) fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

/// Ends a request with its one terminal event: `done` of the result, or
/// PodFailed, either carrying how long the request took (`elapsed`, read
/// as the event is made).
pub(super) async fn finish<T>(
    sink: &EventSink,
    elapsed: impl Fn() -> Duration,
    result: Result<T, StartError>,
    done: impl FnOnce(T) -> StartEvent,
) {
    let terminal = match result {
        Ok(t) => done(t),
        Err(e) => failed_event(&e),
    };
    sink.emit(terminal.took(elapsed())).await;
}
