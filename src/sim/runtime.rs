//! The CRI RuntimeService of the sim: each method counts the call, waits the configured latency,
//! hands the request to the store (or to the exec rules) and answers the way containerd does.
//! Methods the sim does not model answer UNIMPLEMENTED. No state of its own.

use std::{sync::Arc, time::Duration};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::error::CallError;
use super::script::{self, ExecPlan};
use super::{RUNTIME_NAME, SimRuntime};

type Answer<T> = Result<Response<T>, Status>;

/// Events buffered per GetContainerEvents client before the forwarder waits for it.
const CLIENT_EVENT_BUFFER: usize = 64;

#[tonic::async_trait]
impl RuntimeService for SimRuntime {
    async fn version(
        &self,
        _request: Request<cri::VersionRequest>,
    ) -> Answer<cri::VersionResponse> {
        self.begin("Version").await;
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime_api_version: "v1".to_owned(),
        }))
    }

    async fn status(&self, _request: Request<cri::StatusRequest>) -> Answer<cri::StatusResponse> {
        self.begin("Status").await;
        let ready = |kind: &str| cri::RuntimeCondition {
            r#type: kind.to_owned(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![ready("RuntimeReady"), ready("NetworkReady")],
            }),
            ..cri::StatusResponse::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Answer<cri::RunPodSandboxResponse> {
        self.begin("RunPodSandbox").await;
        let request = request.into_inner();
        let config = request.config.unwrap_or_default();
        let pod_sandbox_id = self.store().run_sandbox(config, request.runtime_handler)?;
        tracing::debug!(sandbox = %pod_sandbox_id, "sandbox ready");
        Ok(Response::new(cri::RunPodSandboxResponse { pod_sandbox_id }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Answer<cri::StopPodSandboxResponse> {
        self.begin("StopPodSandbox").await;
        self.store()
            .stop_sandbox(&request.into_inner().pod_sandbox_id)?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Answer<cri::RemovePodSandboxResponse> {
        self.begin("RemovePodSandbox").await;
        self.store()
            .remove_sandbox(&request.into_inner().pod_sandbox_id);
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Answer<cri::PodSandboxStatusResponse> {
        self.begin("PodSandboxStatus").await;
        let status = self
            .store()
            .sandbox_status(&request.into_inner().pod_sandbox_id)?;
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(status),
            timestamp: super::state::now_nanos(),
            ..cri::PodSandboxStatusResponse::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Answer<cri::ListPodSandboxResponse> {
        self.begin("ListPodSandbox").await;
        let items = self
            .store()
            .list_sandboxes(request.into_inner().filter.as_ref());
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Answer<cri::CreateContainerResponse> {
        self.begin("CreateContainer").await;
        let request = request.into_inner();
        let config = request.config.unwrap_or_default();
        let container_id = self
            .store()
            .create_container(&request.pod_sandbox_id, config)?;
        Ok(Response::new(cri::CreateContainerResponse { container_id }))
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Answer<cri::StartContainerResponse> {
        self.begin("StartContainer").await;
        self.store()
            .start_container(&request.into_inner().container_id)?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Answer<cri::StopContainerResponse> {
        self.begin("StopContainer").await;
        // The sim's processes die at once, so the grace period (`timeout`) never runs out.
        let id = request.into_inner().container_id;
        self.store().stop_container(&id)?;
        self.inner.journal.record_stop(&id);
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Answer<cri::RemoveContainerResponse> {
        self.begin("RemoveContainer").await;
        self.store()
            .remove_container(&request.into_inner().container_id);
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Answer<cri::ListContainersResponse> {
        self.begin("ListContainers").await;
        let containers = self
            .store()
            .list_containers(request.into_inner().filter.as_ref());
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Answer<cri::ContainerStatusResponse> {
        self.begin("ContainerStatus").await;
        let status = self
            .store()
            .container_status(&request.into_inner().container_id)?;
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(status),
            ..cri::ContainerStatusResponse::default()
        }))
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Answer<cri::ExecSyncResponse> {
        self.begin("ExecSync").await;
        let request = request.into_inner();
        self.inner
            .journal
            .record_exec(&request.container_id, &request.cmd);
        self.store().check_exec(&request.container_id)?;
        let exit_code = match script::exec_plan(&request.cmd) {
            ExecPlan::Exit(code) => code,
            ExecPlan::FailFirst(n) => {
                let before = self.store().count_exec(&request.container_id, &request.cmd);
                i32::from(before < n)
            }
            ExecPlan::ExitCodes(codes) => {
                let before = self.store().count_exec(&request.container_id, &request.cmd);
                codes
                    .get(before as usize)
                    .or(codes.last())
                    .copied()
                    .unwrap_or(0)
            }
            ExecPlan::Sleep(duration) => {
                match u64::try_from(request.timeout).ok().filter(|secs| *secs > 0) {
                    Some(secs) => {
                        let limit = Duration::from_secs(secs);
                        if tokio::time::timeout(limit, tokio::time::sleep(duration))
                            .await
                            .is_err()
                        {
                            return Err(CallError::ExecTimeout {
                                timeout: crate::duration::go(Duration::from_secs(secs)),
                            }
                            .into());
                        }
                    }
                    None => tokio::time::sleep(duration).await,
                }
                0
            }
        };
        // A failing command "prints" itself, so tests can check that its output never reaches
        // podstart's events.
        let stdout = if exit_code == 0 {
            Vec::new()
        } else {
            request.cmd.join(" ").into_bytes()
        };
        Ok(Response::new(cri::ExecSyncResponse {
            exit_code,
            stdout,
            ..cri::ExecSyncResponse::default()
        }))
    }

    type GetContainerEventsStream = ReceiverStream<Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _request: Request<cri::GetEventsRequest>,
    ) -> Answer<Self::GetContainerEventsStream> {
        if self.inner.config.no_container_events {
            return self.not_simulated("GetContainerEvents").await;
        }
        self.begin("GetContainerEvents").await;
        let mut events = self.store().subscribe();
        let mut closing = self.inner.closing.subscribe();
        let (client, stream) = mpsc::channel(CLIENT_EVENT_BUFFER);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let _open = inner.journal.event_stream_opened();
            loop {
                let next = tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => break,
                    () = client.closed() => break,
                    next = events.recv() => next,
                };
                let item = match next {
                    Ok(event) => Ok(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "container event subscriber lagged; ending its stream"
                        );
                        Err(CallError::EventsLagged { missed }.into())
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let lagged = item.is_err();
                if client.send(item).await.is_err() || lagged {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn update_container_resources(
        &self,
        _request: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Answer<cri::UpdateContainerResourcesResponse> {
        self.not_simulated("UpdateContainerResources").await
    }

    async fn reopen_container_log(
        &self,
        _request: Request<cri::ReopenContainerLogRequest>,
    ) -> Answer<cri::ReopenContainerLogResponse> {
        self.not_simulated("ReopenContainerLog").await
    }

    async fn exec(&self, _request: Request<cri::ExecRequest>) -> Answer<cri::ExecResponse> {
        self.not_simulated("Exec").await
    }

    async fn attach(&self, _request: Request<cri::AttachRequest>) -> Answer<cri::AttachResponse> {
        self.not_simulated("Attach").await
    }

    async fn port_forward(
        &self,
        _request: Request<cri::PortForwardRequest>,
    ) -> Answer<cri::PortForwardResponse> {
        self.not_simulated("PortForward").await
    }

    async fn container_stats(
        &self,
        _request: Request<cri::ContainerStatsRequest>,
    ) -> Answer<cri::ContainerStatsResponse> {
        self.not_simulated("ContainerStats").await
    }

    async fn list_container_stats(
        &self,
        _request: Request<cri::ListContainerStatsRequest>,
    ) -> Answer<cri::ListContainerStatsResponse> {
        self.not_simulated("ListContainerStats").await
    }

    async fn pod_sandbox_stats(
        &self,
        _request: Request<cri::PodSandboxStatsRequest>,
    ) -> Answer<cri::PodSandboxStatsResponse> {
        self.not_simulated("PodSandboxStats").await
    }

    async fn list_pod_sandbox_stats(
        &self,
        _request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Answer<cri::ListPodSandboxStatsResponse> {
        self.not_simulated("ListPodSandboxStats").await
    }

    async fn update_runtime_config(
        &self,
        _request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Answer<cri::UpdateRuntimeConfigResponse> {
        self.not_simulated("UpdateRuntimeConfig").await
    }

    async fn checkpoint_container(
        &self,
        _request: Request<cri::CheckpointContainerRequest>,
    ) -> Answer<cri::CheckpointContainerResponse> {
        self.not_simulated("CheckpointContainer").await
    }

    async fn list_metric_descriptors(
        &self,
        _request: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Answer<cri::ListMetricDescriptorsResponse> {
        self.not_simulated("ListMetricDescriptors").await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _request: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Answer<cri::ListPodSandboxMetricsResponse> {
        self.not_simulated("ListPodSandboxMetrics").await
    }

    async fn runtime_config(
        &self,
        _request: Request<cri::RuntimeConfigRequest>,
    ) -> Answer<cri::RuntimeConfigResponse> {
        self.not_simulated("RuntimeConfig").await
    }
}

impl SimRuntime {
    async fn not_simulated<T>(&self, op: &'static str) -> Answer<T> {
        self.begin(op).await;
        Err(CallError::NotSimulated { op }.into())
    }
}
