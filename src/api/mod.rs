//! The PodStarter gRPC service: checks requests, hands them to the start
//! flow, and turns its events into response streams. Holds no pod state.
//! `metrics` counts every request the gRPC server handles.
pub mod metrics;

use std::{pin::Pin, time::Duration};

use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::proto::v1::{
    GetPodRequest, ListPodsRequest, ListPodsResponse, Pod, PodMetadata, PodRef,
    StartContainerRequest, StartEvent, StartPodRequest, StopPodRequest, WatchEventsRequest,
    pod_starter_server::PodStarter,
};
use crate::spec::validate::{
    validate_pod_ref, validate_start_container, validate_start_pod, validate_stop_pod,
};
use crate::start::{EventSink, StartError, Starter};
use crate::state::view;
use crate::telemetry::remote_context;

/// Events buffered per stream before a slow caller holds the flow up.
const STREAM_BUFFER: usize = 64;

type EventStream = Pin<Box<dyn Stream<Item = Result<StartEvent, Status>> + Send>>;

#[derive(Debug)]
pub struct PodStarterService {
    starter: Starter,
    tasks: TaskTracker,
}

impl PodStarterService {
    /// `tasks` tracks every start and stop, so shutdown can drain them.
    pub fn new(starter: Starter, tasks: TaskTracker) -> PodStarterService {
        PodStarterService { starter, tasks }
    }

    /// The span of one StartPod / StopPod, continuing the caller's trace
    /// when its metadata carries W3C trace context.
    fn span<T>(name: &'static str, request: &Request<T>, meta: &PodMetadata) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            otel.name = name,
            pod_uid = %meta.uid,
            pod_namespace = %meta.namespace,
            pod_name = %meta.name,
        );
        if let Err(e) = span.set_parent(remote_context(request.metadata())) {
            tracing::debug!(error = %e, "caller trace context not applied");
        }
        span
    }

    fn stream(&self, meta: &PodMetadata) -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let sink = EventSink::new(meta, Some(tx), self.starter.bus());
        (sink, Box::pin(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl PodStarter for PodStarterService {
    type StartPodStream = EventStream;
    type StartContainerStream = EventStream;
    type StopPodStream = EventStream;
    type WatchEventsStream = EventStream;

    async fn start_pod(
        &self,
        request: Request<StartPodRequest>,
    ) -> Result<Response<Self::StartPodStream>, Status> {
        validate_start_pod(request.get_ref()).map_err(StartError::from)?;
        let meta = request
            .get_ref()
            .pod
            .as_ref()
            .and_then(|p| p.metadata.clone())
            .unwrap_or_default();
        let span = Self::span("StartPod", &request, &meta);
        let deadline = grpc_timeout(request.metadata());
        let req = request.into_inner();
        let (sink, stream) = self.stream(&meta);
        let starter = self.starter.clone();
        self.tasks
            .spawn(async move { starter.start_pod(req, sink, deadline).await }.instrument(span));
        Ok(Response::new(stream))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<Self::StartContainerStream>, Status> {
        let req = request.into_inner();
        validate_start_container(&req).map_err(StartError::from)?;
        let meta = self
            .starter
            .find_pod(&PodRef {
                uid: req.pod_uid.clone(),
                ..Default::default()
            })
            .await?;
        let (sink, stream) = self.stream(&meta);
        let starter = self.starter.clone();
        self.tasks
            .spawn(async move { starter.start_container(req, sink).await });
        Ok(Response::new(stream))
    }

    async fn stop_pod(
        &self,
        request: Request<StopPodRequest>,
    ) -> Result<Response<Self::StopPodStream>, Status> {
        validate_stop_pod(request.get_ref()).map_err(StartError::from)?;
        let pod_ref = request.get_ref().pod.clone().unwrap_or_default();
        let grace = request.get_ref().grace_period_seconds;
        let meta = self.starter.find_pod(&pod_ref).await?;
        let span = Self::span("StopPod", &request, &meta);
        let (sink, stream) = self.stream(&meta);
        let starter = self.starter.clone();
        self.tasks
            .spawn(async move { starter.stop_pod(meta, grace, sink).await }.instrument(span));
        Ok(Response::new(stream))
    }

    async fn get_pod(&self, request: Request<GetPodRequest>) -> Result<Response<Pod>, Status> {
        let pod_ref = request.into_inner().pod.unwrap_or_default();
        validate_pod_ref(&pod_ref).map_err(StartError::from)?;
        let pods = view::pods(self.starter.cri(), &view::PodFilter::from(&pod_ref), true)
            .await
            .map_err(|e| Status::from(StartError::Runtime(e)))?;
        match pods.into_iter().next() {
            Some(pod) => Ok(Response::new(pod)),
            None => Err(StartError::PodNotFound {
                pod: if pod_ref.uid.is_empty() {
                    format!("{}/{}", pod_ref.namespace, pod_ref.name)
                } else {
                    pod_ref.uid
                },
            }
            .into()),
        }
    }

    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let req = request.into_inner();
        let filter = view::PodFilter {
            namespace: (!req.namespace.is_empty()).then_some(req.namespace),
            labels: req.label_selector,
            ..Default::default()
        };
        let pods = view::pods(self.starter.cri(), &filter, false)
            .await
            .map_err(|e| Status::from(StartError::Runtime(e)))?;
        Ok(Response::new(ListPodsResponse { pods }))
    }

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let req = request.into_inner();
        let mut feed = self.starter.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            loop {
                let event = match feed.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "a WatchEvents caller fell behind");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let wanted = (req.pod_uid.is_empty() || req.pod_uid == event.pod_uid)
                    && (req.namespace.is_empty() || req.namespace == event.pod_namespace);
                if wanted && tx.send(Ok(event)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><unit>`,
/// unit one of H M S m u n), if it sent one.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_parses() {
        let with = |v: &'static str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&m)
        };
        assert_eq!(with("10S"), Some(Duration::from_secs(10)));
        assert_eq!(with("250m"), Some(Duration::from_millis(250)));
        assert_eq!(with("2M"), Some(Duration::from_secs(120)));
        assert_eq!(with("S"), None);
        assert_eq!(with("10x"), None);
        assert_eq!(with("1234567890S"), None, "at most 8 digits");
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }
}
