//! Where container state changes come from, best first: the CRI's
//! `GetContainerEvents` (containerd 1.7+, CRI-O), else containerd's own
//! events service (`containerd.services.events.v1.Events/Subscribe`,
//! namespace `k8s.io`: exits as they happen on containerd 1.6, whose CRI has
//! no events), else nothing but the relist. Each stream is turned into
//! [`Change`]s; a stream that ends is reopened by the watcher after a relist.
use std::{fmt, time::Duration};

use containerd_client::events as ctrd_events;
use containerd_client::services::v1::{SubscribeRequest, events_client::EventsClient};
use containerd_client::types::Envelope;
use k8s_cri::v1 as cri;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Request};

use super::table::{Exit, Phase, Seen};
use crate::cri::Cri;
use crate::endpoint::{self, Address, Peer};

/// Which source to use (`--container-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceChoice {
    /// CRI events, else containerd's events, else relisting.
    Auto,
    /// CRI `GetContainerEvents` only (relisting when it is missing).
    Cri,
    /// containerd's events service only (relisting when it is missing).
    Containerd,
    /// No event stream: relist every period, as the kubelet's generic PLEG.
    Relist,
}

/// The source in use, for logs and the `podstart_container_events_source` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cri,
    Containerd,
    Relist,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Cri => "cri",
            Source::Containerd => "containerd",
            Source::Relist => "relist",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One state change an event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// A container with all it takes to place it (CRI events carry this).
    Seen(Seen),
    /// A container known by id only moved to `phase` (containerd events).
    Phase { id: String, phase: Phase },
    /// A container's main process exited (containerd's TaskExit): the
    /// code and time, before the runtime's CRI status shows them.
    Exited { id: String, exit: Exit },
    /// A container was deleted.
    Deleted { id: String },
}

/// containerd selects the namespace from this request header.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The namespace the CRI plugin runs containers in.
const CRI_NAMESPACE: &str = "k8s.io";
/// The topics that move a container's phase.
const TOPICS: [&str; 4] = [
    "/tasks/start",
    "/tasks/exit",
    "/containers/create",
    "/containers/delete",
];

/// An open event stream. A quiet runtime may answer a streaming call only
/// with its first event (containerd's Subscribe, and its CRI
/// GetContainerEvents, send no response headers before one), so each
/// stream is opened and read by a task of its own and handed over through a
/// channel: opening never waits for the node to do something. The task ends
/// when the stream does or the watcher drops its end.
pub(super) enum Stream {
    Cri(mpsc::Receiver<Result<cri::ContainerEventResponse, tonic::Status>>),
    Containerd(mpsc::Receiver<Result<Envelope, tonic::Status>>),
}

/// What reading a stream gave.
#[derive(Debug)]
pub(super) enum Next {
    Changes(Vec<Change>),
    /// The stream ended or failed: reopen it.
    Ended,
    /// The runtime turned out not to have this source.
    Missing,
}

/// How long opening waits for the runtime's answer to a stream call.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Why a source could not be opened.
#[derive(Debug)]
pub(super) enum OpenError {
    /// The runtime does not have it: do not ask again.
    Missing,
    /// It failed this time (the runtime is away): ask again later.
    Failed(String),
}

/// Events buffered between a stream's reader and the watcher.
const BUFFER: usize = 1024;

/// Hands a stream's messages to the watcher until either side ends; a
/// failure is handed over last.
async fn forward<T>(mut stream: tonic::Streaming<T>, tx: mpsc::Sender<Result<T, tonic::Status>>) {
    loop {
        let item = tokio::select! {
            item = stream.message() => item,
            () = tx.closed() => return,
        };
        let item = match item {
            Ok(Some(e)) => Ok(e),
            Ok(None) => return,
            Err(status) => Err(status),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source().name())
    }
}

impl Stream {
    pub(super) fn source(&self) -> Source {
        match self {
            Stream::Cri(_) => Source::Cri,
            Stream::Containerd(_) => Source::Containerd,
        }
    }

    /// CRI `GetContainerEvents`. Its answer is awaited for a moment, so a
    /// runtime without it is known at once; a quiet runtime that holds its
    /// answer until the first event counts as open.
    pub(super) async fn open_cri(cri: &Cri) -> Result<Stream, OpenError> {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (answered, answer) = oneshot::channel();
        let cri = cri.clone();
        tokio::spawn(async move {
            let opened = tokio::select! {
                opened = cri.get_container_events() => opened,
                () = tx.closed() => return,
            };
            match opened {
                Ok(stream) => {
                    let _ = answered.send(Ok(()));
                    forward(stream, tx).await;
                }
                Err(e) => {
                    let _ = answered.send(Err(e));
                }
            }
        });
        match tokio::time::timeout(ANSWER_WAIT, answer).await {
            Ok(Ok(Err(e))) if e.code() == Code::Unimplemented => Err(OpenError::Missing),
            Ok(Ok(Err(e))) => Err(OpenError::Failed(e.to_string())),
            Ok(Err(_)) => Err(OpenError::Failed("the event stream's reader ended".into())),
            Ok(Ok(Ok(()))) | Err(_) => Ok(Stream::Cri(rx)),
        }
    }

    /// containerd's events service at `addr`, filtered to the CRI
    /// namespace and the topics that move containers. A runtime without it
    /// shows as [`Next::Missing`] on the first read.
    pub(super) async fn open_containerd(addr: &Address) -> Result<Stream, OpenError> {
        // Connected first, so a runtime that is away fails the open (and
        // the watcher pauses before the next try).
        let channel = endpoint::connect(addr, Peer::Runtime)
            .await
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let filters = TOPICS
            .iter()
            .map(|t| format!("namespace=={CRI_NAMESPACE},topic==\"{t}\""))
            .collect();
        let mut req = Request::new(SubscribeRequest { filters });
        req.metadata_mut().insert(
            NAMESPACE_HEADER,
            tonic::metadata::MetadataValue::from_static(CRI_NAMESPACE),
        );
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(async move {
            let mut client = EventsClient::new(channel);
            let opened = tokio::select! {
                opened = client.subscribe(req) => opened,
                () = tx.closed() => return,
            };
            match opened {
                Ok(stream) => forward(stream.into_inner(), tx).await,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        Ok(Stream::Containerd(rx))
    }

    /// The next changes, or why there are none.
    pub(super) async fn next(&mut self) -> Next {
        match self {
            Stream::Cri(rx) => match rx.recv().await {
                Some(Ok(e)) => Next::Changes(from_cri(e)),
                Some(Err(s)) if s.code() == Code::Unimplemented => Next::Missing,
                Some(Err(_)) | None => Next::Ended,
            },
            Stream::Containerd(rx) => match rx.recv().await {
                Some(Ok(e)) => Next::Changes(from_containerd(&e)),
                Some(Err(s)) if matches!(s.code(), Code::Unimplemented | Code::NotFound) => {
                    Next::Missing
                }
                Some(Err(_)) | None => Next::Ended,
            },
        }
    }
}

/// A CRI container event: the changed container and, as the CRI sends
/// them, all the sandbox's containers.
pub(super) fn from_cri(e: cri::ContainerEventResponse) -> Vec<Change> {
    let Some(sandbox_id) = e.pod_sandbox_status.as_ref().map(|s| s.id.clone()) else {
        return vec![];
    };
    let kind = cri::ContainerEventType::try_from(e.container_event_type).ok();
    if kind == Some(cri::ContainerEventType::ContainerDeletedEvent) {
        return vec![Change::Deleted { id: e.container_id }];
    }
    let mut changes: Vec<Change> = e
        .containers_statuses
        .into_iter()
        .map(|s| {
            let meta = s.metadata.unwrap_or_default();
            Change::Seen(Seen {
                id: s.id,
                sandbox_id: sandbox_id.clone(),
                name: meta.name,
                attempt: meta.attempt,
                phase: Phase::from_cri(s.state),
            })
        })
        .collect();
    let phase = match kind {
        Some(cri::ContainerEventType::ContainerCreatedEvent) => Some(Phase::Created),
        Some(cri::ContainerEventType::ContainerStartedEvent) => Some(Phase::Running),
        Some(cri::ContainerEventType::ContainerStoppedEvent) => Some(Phase::Exited),
        _ => None,
    };
    if let Some(phase) = phase {
        changes.push(Change::Phase {
            id: e.container_id,
            phase,
        });
    }
    changes
}

/// A containerd event. An exec's exit (`TaskExit` with an exec id, as exec
/// hooks and probes make) is not the container's.
pub(super) fn from_containerd(e: &Envelope) -> Vec<Change> {
    let Some(any) = e.event.as_ref() else {
        return vec![];
    };
    let bytes = any.value.as_slice();
    let change = match e.topic.as_str() {
        "/tasks/exit" => ctrd_events::TaskExit::decode(bytes)
            .ok()
            .filter(|x| x.id.is_empty() || x.id == x.container_id)
            .map(|x| Change::Exited {
                exit: Exit {
                    code: i32::try_from(x.exit_status).unwrap_or(i32::MAX),
                    finished_at: x.exited_at.map_or(0, |t| {
                        t.seconds
                            .saturating_mul(1_000_000_000)
                            .saturating_add(i64::from(t.nanos))
                    }),
                },
                id: x.container_id,
            }),
        "/tasks/start" => ctrd_events::TaskStart::decode(bytes)
            .ok()
            .map(|x| Change::Phase {
                id: x.container_id,
                phase: Phase::Running,
            }),
        "/containers/create" => {
            ctrd_events::ContainerCreate::decode(bytes)
                .ok()
                .map(|x| Change::Phase {
                    id: x.id,
                    phase: Phase::Created,
                })
        }
        "/containers/delete" => ctrd_events::ContainerDelete::decode(bytes)
            .ok()
            .map(|x| Change::Deleted { id: x.id }),
        _ => None,
    };
    change.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(topic: &str, event: impl Message) -> Envelope {
        Envelope {
            topic: topic.into(),
            namespace: CRI_NAMESPACE.into(),
            event: Some(prost_types::Any {
                type_url: String::new(),
                value: event.encode_to_vec(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_task_exit_of_the_container_is_an_exit() {
        let e = envelope(
            "/tasks/exit",
            ctrd_events::TaskExit {
                container_id: "c1".into(),
                id: "c1".into(),
                exit_status: 3,
                exited_at: Some(prost_types::Timestamp {
                    seconds: 2,
                    nanos: 5,
                }),
                ..Default::default()
            },
        );
        assert_eq!(
            from_containerd(&e),
            [Change::Exited {
                id: "c1".into(),
                exit: Exit {
                    code: 3,
                    finished_at: 2_000_000_005
                }
            }]
        );
    }

    #[test]
    fn containerd_exit_of_an_exec_is_not_the_containers() {
        let e = envelope(
            "/tasks/exit",
            ctrd_events::TaskExit {
                container_id: "c1".into(),
                id: "exec-42".into(),
                ..Default::default()
            },
        );
        assert!(from_containerd(&e).is_empty());
    }

    #[test]
    fn containerd_start_create_delete() {
        let start = envelope(
            "/tasks/start",
            ctrd_events::TaskStart {
                container_id: "c1".into(),
                pid: 7,
            },
        );
        assert_eq!(
            from_containerd(&start),
            [Change::Phase {
                id: "c1".into(),
                phase: Phase::Running
            }]
        );
        let create = envelope(
            "/containers/create",
            ctrd_events::ContainerCreate {
                id: "c2".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            from_containerd(&create),
            [Change::Phase {
                id: "c2".into(),
                phase: Phase::Created
            }]
        );
        let delete = envelope(
            "/containers/delete",
            ctrd_events::ContainerDelete { id: "c2".into() },
        );
        assert_eq!(
            from_containerd(&delete),
            [Change::Deleted { id: "c2".into() }]
        );
        let other = envelope("/images/update", ctrd_events::ContainerDelete::default());
        assert!(from_containerd(&other).is_empty());
    }

    fn status(id: &str, name: &str, state: cri::ContainerState) -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: id.into(),
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 2,
            }),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn cri_events_place_every_container_of_the_sandbox() {
        let e = cri::ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: cri::ContainerEventType::ContainerStoppedEvent as i32,
            pod_sandbox_status: Some(cri::PodSandboxStatus {
                id: "s1".into(),
                ..Default::default()
            }),
            containers_statuses: vec![
                status("c1", "web", cri::ContainerState::ContainerExited),
                status("c2", "side", cri::ContainerState::ContainerRunning),
            ],
            ..Default::default()
        };
        let changes = from_cri(e);
        assert_eq!(changes.len(), 3);
        assert_eq!(
            changes[1],
            Change::Seen(Seen {
                id: "c2".into(),
                sandbox_id: "s1".into(),
                name: "side".into(),
                attempt: 2,
                phase: Phase::Running,
            })
        );
        assert_eq!(
            changes[2],
            Change::Phase {
                id: "c1".into(),
                phase: Phase::Exited
            }
        );
    }

    #[test]
    fn cri_deleted_and_sandboxless_events() {
        let deleted = cri::ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: cri::ContainerEventType::ContainerDeletedEvent as i32,
            pod_sandbox_status: Some(cri::PodSandboxStatus {
                id: "s1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(from_cri(deleted), [Change::Deleted { id: "c1".into() }]);
        let orphan = cri::ContainerEventResponse {
            container_id: "c1".into(),
            ..Default::default()
        };
        assert!(from_cri(orphan).is_empty());
    }
}
