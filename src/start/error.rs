//! Every way a start or stop can fail, and — in one place — the gRPC code,
//! the kubelet-style reason and the step each failure is reported with.
use tonic::Code;

use std::sync::Arc;

use crate::cri::CriError;
use crate::images::{PullError, PullFailureKind};
use crate::paths::PathError;
use crate::proto::v1::Step;
use crate::spec::InvalidSpec;
use crate::spec::validate::{clip, echo};
use crate::state::{IdentityConflict, ledger::Insufficient};
use crate::volumes::VolumeError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request breaks a rule; nothing reached the runtime.
    #[error("{0}")]
    InvalidSpec(#[from] InvalidSpec),
    /// No sandbox on this node carries the pod's uid (or namespace/name).
    #[error("pod {} is not known on this node", echo(.pod))]
    PodNotFound { pod: String },
    /// The pod's log directory could not be made: its name is not one
    /// path component inside the log root, or the file system refused.
    #[error("failed to create pod log directory: {0}")]
    LogDirectory(PathError),
    /// The pod's state directory (`<state root>/<uid>`) cannot be made from
    /// its uid.
    #[error("failed to place pod state directory: {0}")]
    StateDirectory(PathError),
    /// The pod's uid is already another pod's (by namespace/name), or the
    /// pod's namespace/name already runs under another uid. Found among the
    /// node's sandboxes (from CRI labels) and the starts in flight; nothing
    /// was created.
    #[error("{0}")]
    PodIdentity(IdentityConflict),
    /// Another StartPod of the same pod (uid and namespace/name) is in
    /// flight with a different request; an identical one would have
    /// attached to it. Nothing was done.
    #[error(
        "a different start of pod {pod} (uid {uid}) is in flight; send the same request to \
         attach to it, or retry after it ends"
    )]
    StartInFlight { pod: String, uid: String },
    /// A pod volume could not be set up (after the sandbox, before any
    /// container).
    #[error("{0}")]
    Volume(crate::volumes::SetUpError),
    /// The pod's requests do not fit in what the node has left (the
    /// kubelet's admission). Nothing was done.
    #[error("{0}")]
    OutOfResource(Insufficient),
    /// RunPodSandbox failed.
    #[error("Failed to create pod sandbox: {0}")]
    CreateSandbox(CriError),
    /// PodSandboxStatus failed right after the sandbox was created.
    #[error("Unable to get pod sandbox status: {0}")]
    SandboxStatus(CriError),
    /// ImageStatus failed.
    #[error("Failed to inspect image {image:?}: {source}")]
    ImageInspect {
        container: String,
        image: String,
        source: CriError,
    },
    /// Pull policy Never and the image is not on the node.
    #[error("Container image {image:?} is not present with pull policy of Never")]
    ImageNeverPull { container: String, image: String },
    /// The image reference does not parse (checked before any CRI call).
    #[error("Failed to apply default image tag {image:?}: {reason}")]
    InvalidImageName {
        container: String,
        image: String,
        reason: String,
    },
    /// PullImage failed (every credential tried), or stalled and was
    /// cancelled. Shared by every container that waited on the same pull.
    #[error("Failed to pull image {image:?}: {source}")]
    ImagePull {
        container: String,
        image: String,
        source: Arc<PullError>,
    },
    /// A pull of this image for this pod failed recently; no pull was tried.
    #[error("Back-off pulling image {image:?}: {previous}")]
    ImagePullBackOff {
        container: String,
        image: String,
        previous: String,
    },
    /// The container's config could not be produced (e.g. an ephemeral
    /// container's target does not run).
    #[error("{message}")]
    CreateContainerConfig { container: String, message: String },
    /// CreateContainer failed.
    #[error("Error: {source}")]
    CreateContainer { container: String, source: CriError },
    /// StartContainer failed.
    #[error("Error: {source}")]
    RunContainer { container: String, source: CriError },
    /// The PostStart hook failed; the container was killed.
    #[error("PostStartHook failed: {detail}")]
    PostStartHook { container: String, detail: String },
    /// A regular init container exited non-zero under restartPolicy Never.
    #[error("init container {container:?} exited with code {exit_code} ({reason})")]
    InitContainerFailed {
        container: String,
        exit_code: i32,
        reason: String,
    },
    /// Reading a container's state failed while waiting on it.
    #[error("Unable to get status of container {container:?}: {source}")]
    ContainerStatus { container: String, source: CriError },
    /// One or more app containers failed; the first failure is the cause.
    #[error("{failed} of {total} containers failed to start; first: {first}")]
    AppContainers {
        failed: usize,
        total: usize,
        first: Box<StartError>,
    },
    /// A runtime call outside the start steps (listing, lookup) failed.
    #[error("runtime call failed: {0}")]
    Runtime(CriError),
    /// A stop or remove call failed.
    #[error("Failed to stop pod: {0}")]
    Stop(CriError),
    /// The pod's log directory could not be removed after the pod was.
    #[error("failed to remove pod log directory: {0}")]
    RemoveLogDirectory(PathError),
    /// The caller's deadline passed before the pod started.
    #[error("the caller's deadline of {after:?} passed before the pod started")]
    DeadlineExceeded { after: std::time::Duration },
    /// The start was cancelled (StopPod, shutdown).
    #[error("start cancelled: {why}")]
    Cancelled { why: &'static str },
    /// The start task ended without a result (a bug).
    #[error("start task ended unexpectedly: {0}")]
    TaskFailed(String),
}

impl StartError {
    /// The gRPC code a caller sees for this failure.
    pub fn code(&self) -> Code {
        match self {
            StartError::InvalidSpec(_) => Code::InvalidArgument,
            StartError::PodNotFound { .. } => Code::NotFound,
            StartError::LogDirectory(e)
            | StartError::StateDirectory(e)
            | StartError::RemoveLogDirectory(e) => match e {
                e if e.is_request_fault() => Code::InvalidArgument,
                PathError::Outside { .. } => Code::FailedPrecondition,
                _ => Code::Internal,
            },
            StartError::PodIdentity(_) => Code::AlreadyExists,
            StartError::Volume(e) => match &e.source {
                VolumeError::Io { .. } | VolumeError::Mount { .. } => Code::Internal,
                _ => Code::FailedPrecondition,
            },
            StartError::StartInFlight { .. } => Code::Aborted,
            StartError::OutOfResource(_) => Code::ResourceExhausted,
            StartError::CreateSandbox(e)
            | StartError::SandboxStatus(e)
            | StartError::ImageInspect { source: e, .. }
            | StartError::CreateContainer { source: e, .. }
            | StartError::RunContainer { source: e, .. }
            | StartError::ContainerStatus { source: e, .. }
            | StartError::Runtime(e)
            | StartError::Stop(e) => e.code(),
            StartError::ImagePull { source, .. } => match source.as_ref() {
                PullError::Stalled { .. } => Code::DeadlineExceeded,
                e if e.kind() == PullFailureKind::Unauthorized => Code::Unauthenticated,
                e => e.last_error().map_or(Code::Unknown, CriError::code),
            },
            StartError::InvalidImageName { .. } => Code::InvalidArgument,
            StartError::ImagePullBackOff { .. } => Code::Unavailable,
            StartError::ImageNeverPull { .. } => Code::FailedPrecondition,
            StartError::CreateContainerConfig { .. } => Code::FailedPrecondition,
            StartError::PostStartHook { .. } => Code::Aborted,
            StartError::InitContainerFailed { .. } => Code::Aborted,
            StartError::AppContainers { first, .. } => first.code(),
            StartError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            StartError::Cancelled { .. } => Code::Cancelled,
            StartError::TaskFailed(_) => Code::Internal,
        }
    }

    /// The kubelet's reason string for this failure (its waiting reasons and
    /// sync errors), so people and tools read it without a dictionary.
    pub fn reason(&self) -> &'static str {
        match self {
            // The kubelet's waiting reason for a bad reference.
            StartError::InvalidSpec(spec) if spec.field.ends_with(".image") => "InvalidImageName",
            StartError::InvalidSpec(_) => "InvalidSpec",
            // A uid, namespace or name no path may be made of.
            StartError::LogDirectory(e) | StartError::StateDirectory(e) if e.is_request_fault() => {
                "InvalidSpec"
            }
            StartError::PodNotFound { .. } => "PodNotFound",
            StartError::PodIdentity(_) => "PodIdentityConflict",
            StartError::StartInFlight { .. } => "StartInFlight",
            StartError::OutOfResource(e) => e.reason(),
            StartError::LogDirectory(_)
            | StartError::StateDirectory(_)
            | StartError::CreateSandbox(_) => "CreatePodSandboxError",
            StartError::SandboxStatus(_) => "FailedPodSandBoxStatus",
            StartError::Volume(_) => "FailedMount",
            StartError::ImageInspect { .. } => "ImageInspectError",
            StartError::ImageNeverPull { .. } => "ErrImageNeverPull",
            StartError::InvalidImageName { .. } => "InvalidImageName",
            StartError::ImagePull { source, .. } => match source.kind() {
                PullFailureKind::RegistryUnavailable => "RegistryUnavailable",
                // Not a kubelet reason: the kubelet says ErrImagePull and
                // leaves the 401 in the message.
                PullFailureKind::Unauthorized => "ErrImagePullUnauthorized",
                PullFailureKind::ErrImagePull | PullFailureKind::Stalled => "ErrImagePull",
            },
            StartError::ImagePullBackOff { .. } => "ImagePullBackOff",
            StartError::CreateContainerConfig { .. } => "CreateContainerConfigError",
            StartError::CreateContainer { .. } => "CreateContainerError",
            StartError::RunContainer { .. } => "RunContainerError",
            StartError::PostStartHook { .. } => "PostStartHookError",
            StartError::InitContainerFailed { .. } => "InitContainerFailed",
            StartError::ContainerStatus { .. } => "ContainerStatusError",
            StartError::AppContainers { first, .. } => first.reason(),
            StartError::Runtime(_) => "RuntimeError",
            StartError::Stop(_) => "KillPodError",
            StartError::RemoveLogDirectory(_) => "RemoveLogDirectoryError",
            StartError::DeadlineExceeded { .. } => "DeadlineExceeded",
            StartError::Cancelled { .. } => "Cancelled",
            StartError::TaskFailed(_) => "InternalError",
        }
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            StartError::InvalidSpec(_) => Step::Validate,
            StartError::LogDirectory(e) | StartError::StateDirectory(e) if e.is_request_fault() => {
                Step::Validate
            }
            StartError::PodNotFound { .. } | StartError::Runtime(_) => Step::Unspecified,
            StartError::PodIdentity(_)
            | StartError::StartInFlight { .. }
            | StartError::OutOfResource(_) => Step::Validate,
            StartError::LogDirectory(_)
            | StartError::StateDirectory(_)
            | StartError::CreateSandbox(_)
            | StartError::SandboxStatus(_)
            | StartError::Volume(_) => Step::Sandbox,
            StartError::ImageInspect { .. }
            | StartError::ImageNeverPull { .. }
            | StartError::InvalidImageName { .. }
            | StartError::ImagePull { .. }
            | StartError::ImagePullBackOff { .. } => Step::Image,
            StartError::CreateContainerConfig { .. } | StartError::CreateContainer { .. } => {
                Step::Create
            }
            StartError::RunContainer { .. } => Step::Start,
            StartError::PostStartHook { .. } => Step::PostStart,
            StartError::InitContainerFailed { .. } | StartError::ContainerStatus { .. } => {
                Step::WaitExit
            }
            StartError::AppContainers { first, .. } => first.step(),
            StartError::Stop(_) => Step::StopSandbox,
            StartError::RemoveLogDirectory(_) => Step::Remove,
            StartError::DeadlineExceeded { .. }
            | StartError::Cancelled { .. }
            | StartError::TaskFailed(_) => Step::Unspecified,
        }
    }

    /// The container the failure belongs to, if any.
    pub fn container(&self) -> Option<&str> {
        match self {
            StartError::ImageInspect { container, .. }
            | StartError::ImageNeverPull { container, .. }
            | StartError::InvalidImageName { container, .. }
            | StartError::ImagePull { container, .. }
            | StartError::ImagePullBackOff { container, .. }
            | StartError::CreateContainerConfig { container, .. }
            | StartError::CreateContainer { container, .. }
            | StartError::RunContainer { container, .. }
            | StartError::PostStartHook { container, .. }
            | StartError::InitContainerFailed { container, .. }
            | StartError::ContainerStatus { container, .. } => Some(container),
            StartError::AppContainers { first, .. } => first.container(),
            StartError::InvalidSpec(_)
            | StartError::PodNotFound { .. }
            | StartError::PodIdentity(_)
            | StartError::StartInFlight { .. }
            | StartError::OutOfResource(_)
            | StartError::LogDirectory(_)
            | StartError::StateDirectory(_)
            | StartError::CreateSandbox(_)
            | StartError::SandboxStatus(_)
            | StartError::Volume(_)
            | StartError::Runtime(_)
            | StartError::Stop(_)
            | StartError::RemoveLogDirectory(_)
            | StartError::DeadlineExceeded { .. }
            | StartError::Cancelled { .. }
            | StartError::TaskFailed(_) => None,
        }
    }
}

/// Longest status message sent to a caller: what a client's trailer takes
/// whatever the message repeats.
const STATUS_MESSAGE_CHARS: usize = 1024;

impl From<StartError> for tonic::Status {
    fn from(e: StartError) -> tonic::Status {
        tonic::Status::new(e.code(), clip(&e.to_string(), STATUS_MESSAGE_CHARS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_input_is_cut_at_64_characters() {
        let long = "é".repeat(3_000_000);
        let e = StartError::PodNotFound { pod: long };
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().len() < 200, "{}", status.message());
        let status = tonic::Status::from(StartError::TaskFailed("x".repeat(100_000)));
        assert_eq!(status.message().chars().count(), STATUS_MESSAGE_CHARS + 1);
    }

    fn cri(code: Code) -> CriError {
        CriError::Call {
            op: "pull_image",
            status: tonic::Status::new(code, "boom"),
        }
    }

    fn pull(code: Code, message: &str) -> Arc<PullError> {
        Arc::new(PullError::Runtime {
            attempts: vec![crate::images::failure::Attempt {
                server: String::new(),
                error: CriError::Call {
                    op: "pull_image",
                    status: tonic::Status::new(code, message),
                },
            }],
        })
    }

    #[test]
    fn maps_failures_to_codes_reasons_and_steps() {
        let cases: Vec<(StartError, Code, &str, Step)> = vec![
            (
                StartError::InvalidSpec(InvalidSpec {
                    field: "pod.metadata.name".into(),
                    rule: "must be a DNS-1123 subdomain".into(),
                }),
                Code::InvalidArgument,
                "InvalidSpec",
                Step::Validate,
            ),
            (
                StartError::CreateSandbox(cri(Code::Unknown)),
                Code::Unknown,
                "CreatePodSandboxError",
                Step::Sandbox,
            ),
            (
                StartError::ImagePull {
                    container: "c".into(),
                    image: "i".into(),
                    source: pull(
                        Code::Unknown,
                        "dial tcp 127.0.0.1:1: connect: connection refused",
                    ),
                },
                Code::Unknown,
                "RegistryUnavailable",
                Step::Image,
            ),
            (
                StartError::ImagePull {
                    container: "c".into(),
                    image: "i".into(),
                    source: pull(Code::Unknown, "boom"),
                },
                Code::Unknown,
                "ErrImagePull",
                Step::Image,
            ),
            (
                StartError::ImagePull {
                    container: "c".into(),
                    image: "i".into(),
                    source: pull(Code::Unknown, "status code [manifests 1]: 401 Unauthorized"),
                },
                Code::Unauthenticated,
                "ErrImagePullUnauthorized",
                Step::Image,
            ),
            (
                StartError::ImagePullBackOff {
                    container: "c".into(),
                    image: "i".into(),
                    previous: "boom".into(),
                },
                Code::Unavailable,
                "ImagePullBackOff",
                Step::Image,
            ),
            (
                StartError::InvalidImageName {
                    container: "c".into(),
                    image: "I".into(),
                    reason: "bad".into(),
                },
                Code::InvalidArgument,
                "InvalidImageName",
                Step::Image,
            ),
            (
                StartError::InvalidSpec(InvalidSpec {
                    field: "pod.containers[0].image".into(),
                    rule: "invalid image reference".into(),
                }),
                Code::InvalidArgument,
                "InvalidImageName",
                Step::Validate,
            ),
            (
                StartError::ImageNeverPull {
                    container: "c".into(),
                    image: "i".into(),
                },
                Code::FailedPrecondition,
                "ErrImageNeverPull",
                Step::Image,
            ),
            (
                StartError::PostStartHook {
                    container: "c".into(),
                    detail: "exit 1".into(),
                },
                Code::Aborted,
                "PostStartHookError",
                Step::PostStart,
            ),
            (
                StartError::PodIdentity(IdentityConflict::UidTaken {
                    uid: "u1".into(),
                    known: "ns-a/web".into(),
                    requested: "ns-b/api".into(),
                }),
                Code::AlreadyExists,
                "PodIdentityConflict",
                Step::Validate,
            ),
            (
                StartError::StartInFlight {
                    pod: "ns-a/web".into(),
                    uid: "u1".into(),
                },
                Code::Aborted,
                "StartInFlight",
                Step::Validate,
            ),
            (
                StartError::LogDirectory(PathError::Part {
                    root: "/var/log/pods".into(),
                    part: "a/b".into(),
                    rule: "contains '/'",
                }),
                Code::InvalidArgument,
                "InvalidSpec",
                Step::Validate,
            ),
            (
                StartError::StateDirectory(PathError::Io {
                    path: "/var/lib/podstart/pods/u1".into(),
                    source: std::io::Error::other("read-only file system"),
                }),
                Code::Internal,
                "CreatePodSandboxError",
                Step::Sandbox,
            ),
            (
                StartError::RemoveLogDirectory(PathError::Outside {
                    path: "/var/log/pods/x".into(),
                    root: "/var/log/pods".into(),
                }),
                Code::FailedPrecondition,
                "RemoveLogDirectoryError",
                Step::Remove,
            ),
            (
                StartError::Volume(crate::volumes::SetUpError {
                    volume: "data".into(),
                    source: VolumeError::HostPathType {
                        path: "/x".into(),
                        what: "is not a directory",
                    },
                }),
                Code::FailedPrecondition,
                "FailedMount",
                Step::Sandbox,
            ),
        ];
        for (err, code, reason, step) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.reason(), reason, "{err}");
            assert_eq!(err.step(), step, "{err}");
        }
    }

    #[test]
    fn app_container_failures_report_the_first() {
        let e = StartError::AppContainers {
            failed: 1,
            total: 2,
            first: Box::new(StartError::RunContainer {
                container: "web".into(),
                source: cri(Code::Unknown),
            }),
        };
        assert_eq!(e.reason(), "RunContainerError");
        assert_eq!(e.container(), Some("web"));
        assert_eq!(e.step(), Step::Start);
    }
}
