//! The CRI client: typed calls to the runtime and image services over a unix
//! socket, each with its deadline (the kubelet's defaults), a metrics record
//! and a tracing span. Holds no pod state.
mod connect;
pub use connect::{ConnectError, channel, connect};
mod error;

use std::{collections::HashMap, future::Future, time::Duration};

use k8s_cri::v1 as cri;
use k8s_cri::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tokio::time::Instant;
use tonic::transport::Channel;
use tracing::Instrument;

pub use connect::Address;
pub use error::CriError;

use crate::telemetry::Metrics;

/// Largest message the runtime may send (as the kubelet's CRI client).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Per-call deadlines. The kubelet's `runtimeRequestTimeout` is 2 minutes;
/// RunPodSandbox gets twice that, StopContainer and ExecSync add their own
/// timeouts, PullImage has none (a stalled pull is the runtime's to cancel).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(120),
        }
    }
}

#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    timeouts: Timeouts,
    metrics: Metrics,
}

impl Cri {
    /// Builds clients for the runtime and image endpoints (which may be the
    /// same). Connection happens on first use.
    pub fn new(
        runtime: &Address,
        image: &Address,
        timeouts: Timeouts,
        metrics: Metrics,
    ) -> Result<Cri, CriError> {
        let runtime_channel = connect::channel(runtime)?;
        let image_channel = if image == runtime {
            runtime_channel.clone()
        } else {
            connect::channel(image)?
        };
        Ok(Cri {
            runtime: RuntimeServiceClient::new(runtime_channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            image: ImageServiceClient::new(image_channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            timeouts,
            metrics,
        })
    }

    /// Runs one CRI call under its deadline, recording its duration and
    /// outcome.
    async fn call<T>(
        &self,
        op: &'static str,
        deadline: Option<Duration>,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        let started = Instant::now();
        let span = tracing::debug_span!("cri", operation = op, code = tracing::field::Empty);
        let result = async {
            match deadline {
                Some(after) => match tokio::time::timeout(after, fut).await {
                    Ok(r) => r.map_err(|status| CriError::Call { op, status }),
                    Err(_) => Err(CriError::Timeout { op, after }),
                },
                None => fut.await.map_err(|status| CriError::Call { op, status }),
            }
        }
        .instrument(span.clone())
        .await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        };
        span.record("code", tracing::field::debug(code));
        self.metrics
            .record_runtime_operation(op, code, started.elapsed());
        result.map(tonic::Response::into_inner)
    }

    fn request(&self) -> Option<Duration> {
        Some(self.timeouts.request)
    }

    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::VersionRequest {
            version: "v1".into(),
        };
        self.call("version", self.request(), c.version(req)).await
    }

    pub async fn status(&self) -> Result<cri::StatusResponse, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::StatusRequest { verbose: false };
        self.call("status", self.request(), c.status(req)).await
    }

    pub async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        let deadline = Some(self.timeouts.request * 2);
        let resp = self
            .call("run_podsandbox", deadline, c.run_pod_sandbox(req))
            .await?;
        non_empty("run_podsandbox", resp.pod_sandbox_id, "pod sandbox id")
    }

    pub async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<cri::PodSandboxStatus, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            verbose: false,
        };
        let resp = self
            .call(
                "podsandbox_status",
                self.request(),
                c.pod_sandbox_status(req),
            )
            .await?;
        resp.status.ok_or(CriError::InvalidResponse {
            op: "podsandbox_status",
            missing: "status",
        })
    }

    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.call("stop_podsandbox", self.request(), c.stop_pod_sandbox(req))
            .await
            .map(drop)
    }

    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.call(
            "remove_podsandbox",
            self.request(),
            c.remove_pod_sandbox(req),
        )
        .await
        .map(drop)
    }

    /// Sandboxes whose labels include every pair of `labels`.
    pub async fn list_pod_sandboxes(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<cri::PodSandbox>, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            }),
        };
        let resp = self
            .call("list_podsandbox", self.request(), c.list_pod_sandbox(req))
            .await?;
        Ok(resp.items)
    }

    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp = self
            .call("create_container", self.request(), c.create_container(req))
            .await?;
        non_empty("create_container", resp.container_id, "container id")
    }

    pub async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        let req = cri::StartContainerRequest {
            container_id: container_id.to_string(),
        };
        self.call("start_container", self.request(), c.start_container(req))
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
        let mut c = self.runtime.clone();
        let req = cri::StopContainerRequest {
            container_id: container_id.to_string(),
            timeout: grace.as_secs() as i64,
        };
        let deadline = Some(self.timeouts.request + grace);
        match self
            .call("stop_container", deadline, c.stop_container(req))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        let req = cri::RemoveContainerRequest {
            container_id: container_id.to_string(),
        };
        self.call("remove_container", self.request(), c.remove_container(req))
            .await
            .map(drop)
    }

    pub async fn container_status(
        &self,
        container_id: &str,
    ) -> Result<cri::ContainerStatus, CriError> {
        let mut c = self.runtime.clone();
        let req = cri::ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose: false,
        };
        let resp = self
            .call("container_status", self.request(), c.container_status(req))
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
        let mut c = self.runtime.clone();
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod_sandbox_id.unwrap_or_default().to_string(),
                label_selector: labels,
                ..Default::default()
            }),
        };
        let resp = self
            .call("list_containers", self.request(), c.list_containers(req))
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
        let mut c = self.runtime.clone();
        let req = cri::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let deadline = (!timeout.is_zero()).then(|| timeout + self.timeouts.request);
        self.call("exec_sync", deadline, c.exec_sync(req)).await
    }

    /// The image if the runtime has it.
    pub async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, CriError> {
        let mut c = self.image.clone();
        let req = cri::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let resp = self
            .call("image_status", self.request(), c.image_status(req))
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
        let mut c = self.image.clone();
        let req = cri::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        };
        let resp = self.call("pull_image", None, c.pull_image(req)).await?;
        non_empty("pull_image", resp.image_ref, "image ref")
    }
}

impl Cri {
    /// Removes an image from the node; an absent image is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let mut c = self.image.clone();
        let req = cri::RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        self.call("remove_image", self.request(), c.remove_image(req))
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
