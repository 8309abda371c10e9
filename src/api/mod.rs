//! The PodStarter gRPC service: checks requests, hands them to the start
//! flow, and turns its events into response streams. Holds no pod state.
//! `metrics` counts every request the gRPC server handles; `error` maps the
//! API's own refusals (authorization, admission) to gRPC codes.
//!
//! Every call is checked in this order, before anything reaches the
//! runtime: authorization (the caller, the verb, the namespace), the
//! request's validation, then admission at the level the caller's grant
//! gives. A call naming a pod by uid first checks that the caller holds the
//! verb in some namespace, then finds the pod's namespace and authorizes
//! there; a pod not found is NOT_FOUND only for such a caller.
pub mod error;
pub mod metrics;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::admission::{Grant, admit_container, admit_pod};
use crate::authz::{Authorizer, Denied, Verb};
use crate::listen::Caller;
use crate::proto::v1::{
    GetPodRequest, ListPodsRequest, ListPodsResponse, Pod, PodMetadata, PodRef,
    StartContainerRequest, StartEvent, StartPodRequest, StopPodRequest, WatchEventsRequest,
    pod_starter_server::{PodStarter, PodStarterServer},
};
use crate::spec::validate::{
    validate_list_pods, validate_pod_ref, validate_start_container, validate_start_pod,
    validate_stop_pod, validate_watch_events,
};
use crate::start::{EventSink, StartError, Starter, attach::Joined};
use crate::state::view;
use crate::telemetry::remote_context;
use error::ApiError;

/// Events buffered per stream for a caller that reads slowly. The flow
/// never waits on it: past half of it progress events are dropped, and a
/// caller whose buffer is full when a step event comes is disconnected
/// (`EventSink::for_caller`). A pod's start sends a few events per
/// container; a caller that reads at all keeps the buffer nearly empty.
const STREAM_BUFFER: usize = 128;

/// Largest request the server decodes (tonic's default, set explicitly):
/// a StartPodRequest within every validation limit is far smaller; a
/// larger one is refused (OUT_OF_RANGE) before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Starts (StartPod, StartContainer) carried out at once by default:
/// above the kubelet's default of 110 pods per node, so a whole node's
/// pods may start together; past it a start is refused with
/// RESOURCE_EXHAUSTED before any runtime call.
pub const DEFAULT_MAX_CONCURRENT_STARTS: usize = 128;

type EventStream = Pin<Box<dyn Stream<Item = Result<StartEvent, Status>> + Send>>;

#[derive(Debug)]
pub struct PodStarterService {
    starter: Starter,
    tasks: TaskTracker,
    /// One permit per start being carried out.
    starts: Arc<Semaphore>,
    max_starts: usize,
    authz: Authorizer,
}

impl PodStarterService {
    /// `tasks` tracks every start and stop, so shutdown can drain them.
    pub fn new(starter: Starter, tasks: TaskTracker) -> PodStarterService {
        PodStarterService {
            starter,
            tasks,
            starts: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_STARTS)),
            max_starts: DEFAULT_MAX_CONCURRENT_STARTS,
            authz: Authorizer::default(),
        }
    }

    /// Decides who may do what (the default policy otherwise).
    pub fn authorizer(mut self, authz: Authorizer) -> PodStarterService {
        self.authz = authz;
        self
    }

    /// At most `n` (at least 1) starts carried out at once; more are
    /// refused.
    pub fn max_concurrent_starts(mut self, n: usize) -> PodStarterService {
        let n = n.clamp(1, Semaphore::MAX_PERMITS);
        self.starts = Arc::new(Semaphore::new(n));
        self.max_starts = n;
        self
    }

    /// The gRPC service with its request size limit.
    pub fn into_server(self) -> PodStarterServer<PodStarterService> {
        PodStarterServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    /// A place among the starts in progress, or RESOURCE_EXHAUSTED.
    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.starts.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} starts are in progress on this node (--max-concurrent-starts); \
                 try again later",
                self.max_starts
            ))
        })
    }

    /// Runs a request's flow as a tracked task; a panic in it still ends
    /// the caller's stream with PodFailed (INTERNAL).
    fn spawn(&self, sink: EventSink, flow: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(sink.guard(flow));
    }

    /// The caller's grant to `verb` pods in `namespace`, or
    /// PERMISSION_DENIED (counted and logged).
    fn authorize(&self, caller: &Caller, verb: Verb, namespace: &str) -> Result<Grant, Status> {
        self.authz
            .authorize(caller, verb, namespace)
            .map_err(|d| self.denied(d))
    }

    /// OK when the caller may `verb` pods in some namespace, else
    /// PERMISSION_DENIED: checked before a pod named by uid is looked up.
    fn holds(&self, caller: &Caller, verb: Verb) -> Result<(), Status> {
        self.authz.holds(caller, verb).map_err(|d| self.denied(d))
    }

    /// For a request naming a pod: PERMISSION_DENIED unless the caller may
    /// `verb` pods in the namespace the reference names, or (a reference by
    /// uid alone) in some namespace.
    fn authorize_ref(&self, caller: &Caller, verb: Verb, pod: &PodRef) -> Result<(), Status> {
        if pod.namespace.is_empty() {
            self.holds(caller, verb)
        } else {
            self.authorize(caller, verb, &pod.namespace).map(drop)
        }
    }

    fn denied(&self, d: Denied) -> Status {
        self.starter.metrics().authz_denied(d.verb.name());
        tracing::info!(
            caller = %d.caller,
            verb = %d.verb,
            namespace = d.namespace.as_deref().map(|n| crate::spec::validate::clip(n, 64)),
            "request denied by the authorization policy"
        );
        ApiError::Denied(d).into()
    }

    /// The span of one StartPod / StopPod / StartContainer, continuing the
    /// caller's trace when its metadata carries W3C trace context.
    fn span<T>(
        name: &'static str,
        request: &Request<T>,
        caller: &Caller,
        meta: &PodMetadata,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            otel.name = name,
            caller = %caller,
            pod_uid = %meta.uid,
            pod_namespace = %meta.namespace,
            pod_name = %meta.name,
        );
        if let Err(e) = span.set_parent(remote_context(request.metadata())) {
            tracing::debug!(error = %e, "caller trace context not applied");
        }
        span
    }

    /// The caller of a request (every listener puts one in its
    /// extensions); without one, an anonymous caller.
    fn caller<T>(request: &Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller::named(Vec::new(), "".into()))
    }

    fn stream(&self, meta: &PodMetadata) -> (EventSink, EventStream) {
        let (sink, stream) = EventSink::for_caller(
            meta,
            self.starter.bus(),
            STREAM_BUFFER,
            self.starter.metrics().clone(),
        );
        (sink, Box::pin(stream))
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
        let caller = Self::caller(&request);
        let pod = request.get_ref().pod.as_ref();
        let namespace = pod
            .and_then(|p| p.metadata.as_ref())
            .map_or("", |m| m.namespace.as_str());
        let grant = self.authorize(&caller, Verb::Start, namespace)?;
        validate_start_pod(request.get_ref()).map_err(StartError::from)?;
        if let Some(pod) = pod {
            admit_pod(&grant, pod).map_err(ApiError::from)?;
        }
        // The same request as a start in flight attaches to it (without a
        // start place); another request of that pod is refused.
        let key = self.starter.start_key(request.get_ref());
        if let Some(stream) = self.starter.attach(&key, STREAM_BUFFER)? {
            return Ok(Response::new(stream));
        }
        let permit = self.admit()?;
        let meta = request
            .get_ref()
            .pod
            .as_ref()
            .and_then(|p| p.metadata.clone())
            .unwrap_or_default();
        let (sink, stream, registration) = match self.starter.join(&key, &meta, STREAM_BUFFER)? {
            Joined::Attached(stream) => return Ok(Response::new(stream)),
            Joined::Lead {
                sink,
                stream,
                registration,
            } => (sink, stream, registration),
        };
        let span = Self::span("StartPod", &request, &caller, &meta);
        let deadline = grpc_timeout(request.metadata());
        let req = request.into_inner();
        let starter = self.starter.clone();
        self.spawn(
            sink.clone(),
            async move {
                starter.start_pod(req, sink, deadline).await;
                // After the terminal event: an identical StartPod now
                // starts anew.
                drop(registration);
                drop(permit);
            }
            .instrument(span),
        );
        Ok(Response::new(stream))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<Self::StartContainerStream>, Status> {
        let caller = Self::caller(&request);
        self.holds(&caller, Verb::Start)?;
        validate_start_container(request.get_ref()).map_err(StartError::from)?;
        let permit = self.admit()?;
        let meta = self
            .starter
            .find_pod(&PodRef {
                uid: request.get_ref().pod_uid.clone(),
                ..Default::default()
            })
            .await?;
        let grant = self.authorize(&caller, Verb::Start, &meta.namespace)?;
        if let Some(container) = &request.get_ref().container {
            admit_container(&grant, container).map_err(ApiError::from)?;
        }
        let span = Self::span("StartContainer", &request, &caller, &meta);
        let (sink, stream) = self.stream(&meta);
        let starter = self.starter.clone();
        let req = request.into_inner();
        self.spawn(
            sink.clone(),
            async move {
                starter.start_container(req, sink).await;
                drop(permit);
            }
            .instrument(span),
        );
        Ok(Response::new(stream))
    }

    async fn stop_pod(
        &self,
        request: Request<StopPodRequest>,
    ) -> Result<Response<Self::StopPodStream>, Status> {
        let caller = Self::caller(&request);
        let pod_ref = request.get_ref().pod.clone().unwrap_or_default();
        self.authorize_ref(&caller, Verb::Stop, &pod_ref)?;
        validate_stop_pod(request.get_ref()).map_err(StartError::from)?;
        let grace = request.get_ref().grace_period_seconds;
        let meta = self.starter.find_pod(&pod_ref).await?;
        self.authorize(&caller, Verb::Stop, &meta.namespace)?;
        let span = Self::span("StopPod", &request, &caller, &meta);
        let (sink, stream) = self.stream(&meta);
        let starter = self.starter.clone();
        self.spawn(
            sink.clone(),
            async move { starter.stop_pod(meta, grace, sink).await }.instrument(span),
        );
        Ok(Response::new(stream))
    }

    async fn get_pod(&self, request: Request<GetPodRequest>) -> Result<Response<Pod>, Status> {
        let caller = Self::caller(&request);
        let pod_ref = request.into_inner().pod.unwrap_or_default();
        self.authorize_ref(&caller, Verb::Read, &pod_ref)?;
        validate_pod_ref(&pod_ref).map_err(StartError::from)?;
        let pods = view::pods(self.starter.cri(), &view::PodFilter::from(&pod_ref), true)
            .await
            .map_err(|e| Status::from(StartError::Runtime(e)))?;
        match pods.into_iter().next() {
            Some(mut pod) => {
                self.authorize(&caller, Verb::Read, &pod.namespace)?;
                self.starter.readiness().fill(&mut pod);
                Ok(Response::new(pod))
            }
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
        let caller = Self::caller(&request);
        let req = request.into_inner();
        if req.namespace.is_empty() {
            self.holds(&caller, Verb::Read)?;
        } else {
            self.authorize(&caller, Verb::Read, &req.namespace)?;
        }
        validate_list_pods(&req).map_err(StartError::from)?;
        let scope = self.authz.scope(&caller, Verb::Read);
        let filter = view::PodFilter {
            namespace: (!req.namespace.is_empty()).then_some(req.namespace),
            labels: req.label_selector,
            ..Default::default()
        };
        let mut pods = view::pods(self.starter.cri(), &filter, false)
            .await
            .map_err(|e| Status::from(StartError::Runtime(e)))?;
        // Only the namespaces the caller may read.
        pods.retain(|p| scope.allows(&p.namespace));
        for pod in &mut pods {
            self.starter.readiness().fill(pod);
        }
        Ok(Response::new(ListPodsResponse { pods }))
    }

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = Self::caller(&request);
        let req = request.into_inner();
        if req.namespace.is_empty() {
            self.holds(&caller, Verb::Watch)?;
        } else {
            self.authorize(&caller, Verb::Watch, &req.namespace)?;
        }
        validate_watch_events(&req).map_err(StartError::from)?;
        // Only events of namespaces the caller may watch, under the policy
        // in force when each comes.
        let scope = self.authz.scope(&caller, Verb::Watch);
        let mut feed = self.starter.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // The task ends with its stream: when the caller goes, not at the
        // next event.
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = tx.closed() => break,
                    received = feed.recv() => received,
                };
                let event = match received {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "a WatchEvents caller fell behind");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let wanted = (req.pod_uid.is_empty() || req.pod_uid == event.pod_uid)
                    && (req.namespace.is_empty() || req.namespace == event.pod_namespace)
                    && scope.allows(&event.pod_namespace);
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
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
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
