//! The CRI client: typed calls to the runtime and image services over a unix
//! socket. Every call goes through one tower stack (`stack.rs`: retry,
//! tracing, metrics, deadline, concurrency limit) with the kubelet's
//! deadlines. Holds no pod state.
//!
//! The stack's layers, one `Layer` + `Service` pair per file, each working
//! on a [`CriCall`]:
//! - `timeout`: the per-operation deadline, failing with
//!   `CriError::Timeout` naming the operation;
//! - `retry`: which failures are retried, with capped, jittered back-off
//!   and a budget;
//! - `metrics`: count, duration and errors per operation;
//! - `trace`: a span per call attempt;
//! - `health`: calls timing out and calls waiting for a slot, read by the
//!   readiness loop.
mod call;
mod error;
pub mod health;
pub mod metrics;
pub mod retry;
pub mod stack;
pub mod timeout;
pub mod trace;

use std::{collections::HashMap, future::Future, time::Duration};

use k8s_cri::v1 as cri;
use k8s_cri::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::Channel;
use tower::ServiceExt;

pub use call::{CriCall, Operation, Reply, Retry};
pub use error::CriError;

use crate::endpoint::{self, Address, Peer};
use crate::telemetry::Metrics;
use health::{HealthSettings, RuntimeHealth};
use retry::RetrySettings;

/// Largest message the runtime may send (as the kubelet's CRI client).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How the client treats the runtime. Deadlines are the kubelet's:
/// `request_timeout` (its `runtimeRequestTimeout`, 2 minutes) for most
/// calls, twice that for RunPodSandbox, StopContainer's grace on top,
/// ExecSync's own timeout on top (none when that is 0), none for PullImage.
#[derive(Debug, Clone, Copy)]
pub struct CriSettings {
    pub request_timeout: Duration,
    pub retry: RetrySettings,
    pub max_concurrency: usize,
    /// When timeouts and waits for a slot make the runtime unhealthy.
    pub health: HealthSettings,
    /// Send calls straight to the channel, without the layers: only
    /// for measuring what the stack costs (benches/stack_overhead.rs).
    pub bare: bool,
}

impl Default for CriSettings {
    fn default() -> Self {
        CriSettings {
            request_timeout: Duration::from_secs(120),
            retry: RetrySettings::default(),
            max_concurrency: stack::DEFAULT_MAX_CONCURRENCY,
            health: HealthSettings::default(),
            bare: false,
        }
    }
}

#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    settings: CriSettings,
    stack: stack::CriService,
    health: RuntimeHealth,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Cri {
    /// Builds clients for the runtime and image endpoints (which may be the
    /// same). Connection happens on first use.
    pub fn new(
        runtime: &Address,
        image: &Address,
        settings: CriSettings,
        metrics: Metrics,
    ) -> Result<Cri, CriError> {
        let runtime_channel = endpoint::channel(runtime, Peer::Runtime)?;
        let image_channel = if image == runtime {
            runtime_channel.clone()
        } else {
            endpoint::channel(image, Peer::Image)?
        };
        let health = RuntimeHealth::new(settings.health);
        Ok(Cri {
            runtime: RuntimeServiceClient::new(runtime_channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            image: ImageServiceClient::new(image_channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            settings,
            stack: if settings.bare {
                stack::bare()
            } else {
                stack::build(
                    metrics,
                    health.clone(),
                    settings.retry,
                    settings.max_concurrency,
                )
            },
            health,
        })
    }

    /// How the connection is doing: timeouts and waits for a slot.
    pub fn health(&self) -> &RuntimeHealth {
        &self.health
    }

    /// The same client (same connection, stack and health) whose calls
    /// have at most `deadline` instead of the request timeout: for quick
    /// probes.
    pub fn with_request_timeout(&self, deadline: Duration) -> Cri {
        let mut cri = self.clone();
        cri.settings.request_timeout = deadline.min(self.settings.request_timeout);
        cri
    }

    /// Sends one call through the stack: `send` makes the request on a
    /// clone of `client` (again, if the call is retried).
    async fn call<C, Req, Resp, F, Fut>(
        &self,
        client: &C,
        op: Operation,
        deadline: Option<Duration>,
        req: Req,
        send: F,
    ) -> Result<Resp, CriError>
    where
        C: Clone + Send + Sync + 'static,
        Req: Clone + Send + Sync + 'static,
        Resp: Send + 'static,
        F: Fn(C, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send + 'static,
    {
        let client = client.clone();
        let call = CriCall::new(op, deadline, move || {
            let fut = send(client.clone(), req.clone());
            Box::pin(async move { fut.await.map(|r| Box::new(r.into_inner()) as Reply) })
        });
        let reply = self.stack.clone().oneshot(call).await?;
        reply
            .downcast::<Resp>()
            .map(|r| *r)
            .map_err(|_| CriError::InvalidResponse {
                op: op.name(),
                missing: "reply of the expected type",
            })
    }

    fn request(&self) -> Option<Duration> {
        Some(self.settings.request_timeout)
    }

    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        let req = cri::VersionRequest {
            version: "v1".into(),
        };
        self.call(
            &self.runtime,
            Operation::Version,
            self.request(),
            req,
            |mut c, r| async move { c.version(r).await },
        )
        .await
    }

    pub async fn status(&self) -> Result<cri::StatusResponse, CriError> {
        let req = cri::StatusRequest { verbose: false };
        self.call(
            &self.runtime,
            Operation::Status,
            self.request(),
            req,
            |mut c, r| async move { c.status(r).await },
        )
        .await
    }

    pub async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        let deadline = Some(self.settings.request_timeout.saturating_mul(2));
        let resp = self
            .call(
                &self.runtime,
                Operation::RunPodSandbox,
                deadline,
                req,
                |mut c, r| async move { c.run_pod_sandbox(r).await },
            )
            .await?;
        non_empty("run_podsandbox", resp.pod_sandbox_id, "pod sandbox id")
    }

    pub async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<cri::PodSandboxStatus, CriError> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            verbose: false,
        };
        let resp = self
            .call(
                &self.runtime,
                Operation::PodSandboxStatus,
                self.request(),
                req,
                |mut c, r| async move { c.pod_sandbox_status(r).await },
            )
            .await?;
        resp.status.ok_or(CriError::InvalidResponse {
            op: "podsandbox_status",
            missing: "status",
        })
    }

    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.call(
            &self.runtime,
            Operation::StopPodSandbox,
            self.request(),
            req,
            |mut c, r| async move { c.stop_pod_sandbox(r).await },
        )
        .await
        .map(drop)
    }

    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.call(
            &self.runtime,
            Operation::RemovePodSandbox,
            self.request(),
            req,
            |mut c, r| async move { c.remove_pod_sandbox(r).await },
        )
        .await
        .map(drop)
    }

    /// Sandboxes whose labels include every pair of `labels`.
    pub async fn list_pod_sandboxes(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<cri::PodSandbox>, CriError> {
        let req = cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            }),
        };
        let resp = self
            .call(
                &self.runtime,
                Operation::ListPodSandbox,
                self.request(),
                req,
                |mut c, r| async move { c.list_pod_sandbox(r).await },
            )
            .await?;
        Ok(resp.items)
    }

    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp = self
            .call(
                &self.runtime,
                Operation::CreateContainer,
                self.request(),
                req,
                |mut c, r| async move { c.create_container(r).await },
            )
            .await?;
        non_empty("create_container", resp.container_id, "container id")
    }

    pub async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = cri::StartContainerRequest {
            container_id: container_id.to_string(),
        };
        self.call(
            &self.runtime,
            Operation::StartContainer,
            self.request(),
            req,
            |mut c, r| async move { c.start_container(r).await },
        )
        .await
        .map(drop)
    }

    /// Stops a container, giving it `grace` before SIGKILL. NotFound counts
    /// as stopped, as in the kubelet.
    pub async fn stop_container(
        &self,
        container_id: &str,
        grace: Duration,
    ) -> Result<(), CriError> {
        let req = cri::StopContainerRequest {
            container_id: container_id.to_string(),
            timeout: grace.as_secs() as i64,
        };
        let deadline = Some(self.settings.request_timeout.saturating_add(grace));
        match self
            .call(
                &self.runtime,
                Operation::StopContainer,
                deadline,
                req,
                |mut c, r| async move { c.stop_container(r).await },
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = cri::RemoveContainerRequest {
            container_id: container_id.to_string(),
        };
        self.call(
            &self.runtime,
            Operation::RemoveContainer,
            self.request(),
            req,
            |mut c, r| async move { c.remove_container(r).await },
        )
        .await
        .map(drop)
    }

    pub async fn container_status(
        &self,
        container_id: &str,
    ) -> Result<cri::ContainerStatus, CriError> {
        let req = cri::ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose: false,
        };
        let resp = self
            .call(
                &self.runtime,
                Operation::ContainerStatus,
                self.request(),
                req,
                |mut c, r| async move { c.container_status(r).await },
            )
            .await?;
        resp.status.ok_or(CriError::InvalidResponse {
            op: "container_status",
            missing: "status",
        })
    }

    /// Containers of one sandbox (or of all, with `None`) whose labels
    /// include every pair of `labels`.
    pub async fn list_containers(
        &self,
        pod_sandbox_id: Option<&str>,
        labels: HashMap<String, String>,
    ) -> Result<Vec<cri::Container>, CriError> {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod_sandbox_id.unwrap_or_default().to_string(),
                label_selector: labels,
                ..Default::default()
            }),
        };
        let resp = self
            .call(
                &self.runtime,
                Operation::ListContainers,
                self.request(),
                req,
                |mut c, r| async move { c.list_containers(r).await },
            )
            .await?;
        Ok(resp.containers)
    }

    /// Runs `cmd` in a container. A zero `timeout` means no limit, as the
    /// CRI defines it; otherwise the call's deadline is the timeout plus the
    /// request timeout.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<cri::ExecSyncResponse, CriError> {
        let req = cri::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let deadline =
            (!timeout.is_zero()).then(|| timeout.saturating_add(self.settings.request_timeout));
        self.call(
            &self.runtime,
            Operation::ExecSync,
            deadline,
            req,
            |mut c, r| async move { c.exec_sync(r).await },
        )
        .await
    }

    /// The image if the runtime has it.
    pub async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, CriError> {
        let req = cri::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let resp = self
            .call(
                &self.image,
                Operation::ImageStatus,
                self.request(),
                req,
                |mut c, r| async move { c.image_status(r).await },
            )
            .await?;
        Ok(resp.image.filter(|i| !i.id.is_empty()))
    }

    /// Pulls an image; returns the runtime's image reference. No deadline.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let req = cri::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        };
        let resp = self
            .call(
                &self.image,
                Operation::PullImage,
                None,
                req,
                |mut c, r| async move { c.pull_image(r).await },
            )
            .await?;
        non_empty("pull_image", resp.image_ref, "image ref")
    }

    /// Subscribes to the runtime's container events (CRI
    /// `GetContainerEvents`). No deadline: the stream lives until dropped,
    /// and a quiet runtime may send its response headers only with the
    /// first event. Runtimes without it (containerd before 1.7) answer
    /// UNIMPLEMENTED.
    pub async fn get_container_events(
        &self,
    ) -> Result<tonic::Streaming<cri::ContainerEventResponse>, CriError> {
        self.call(
            &self.runtime,
            Operation::GetContainerEvents,
            None,
            cri::GetEventsRequest {},
            |mut c, r| async move { c.get_container_events(r).await },
        )
        .await
    }

    /// Removes an image from the node; an absent image is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let req = cri::RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        self.call(
            &self.image,
            Operation::RemoveImage,
            self.request(),
            req,
            |mut c, r| async move { c.remove_image(r).await },
        )
        .await
        .map(drop)
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn non_empty(op: &'static str, value: String, missing: &'static str) -> Result<String, CriError> {
    if value.is_empty() {
        Err(CriError::InvalidResponse { op, missing })
    } else {
        Ok(value)
    }
}
