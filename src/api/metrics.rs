//! podstart's own gRPC server, counted: `podstart_grpc_server_handled_total`
//! by service, method and final gRPC code. The code of a streaming call is
//! only known at its end (the trailers), so the response body is watched;
//! a stream the client drops counts as Cancelled. Only the methods served
//! here are labels; every other path counts as `unknown`, so callers cannot
//! grow the metrics with made-up paths.
//!
//! The same end of each call writes the access log: one line per call at
//! target `podstart::access` (method, caller identity, final code, time
//! taken; never a payload).
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http_body::{Body, Frame};
use tower::{Layer, Service};

use crate::listen::Caller;
use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Metrics) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, RB> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    RB::Error: Into<tower::BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call {
            method: Method::from_path(req.uri().path()),
            caller: req.extensions().get::<Caller>().cloned(),
            since: Instant::now(),
            metrics: self.metrics.clone(),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A trailers-only response (an error before any message) has
            // its status in the headers.
            if let Some(code) = grpc_status(resp.headers()) {
                call.ended(code);
                return Ok(resp.map(tonic::body::Body::new));
            }
            Ok(resp.map(|body| {
                tonic::body::Body::new(Watched {
                    inner: body,
                    call,
                    recorded: false,
                })
            }))
        })
    }
}

/// Every method served, by service: PodStarter, health and both
/// reflection versions (a test checks the PodStarter list against the
/// proto).
const KNOWN: &[(&str, &[&str])] = &[
    (
        "podstart.v1.PodStarter",
        &[
            "StartPod",
            "StartContainer",
            "StopPod",
            "GetPod",
            "ListPods",
            "WatchEvents",
        ],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

/// The label of paths that name no method served here.
const UNKNOWN: &str = "unknown";

struct Method {
    service: &'static str,
    method: &'static str,
}

impl Method {
    fn from_path(path: &str) -> Method {
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (service, method) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        KNOWN
            .iter()
            .find(|(s, _)| *s == service)
            .and_then(|(s, methods)| {
                methods.iter().find(|m| **m == method).map(|m| Method {
                    service: s,
                    method: m,
                })
            })
            .unwrap_or(Method {
                service: UNKNOWN,
                method: UNKNOWN,
            })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(value))
}

/// One call, until its final code is known.
struct Call {
    method: Method,
    caller: Option<Caller>,
    since: Instant,
    metrics: Metrics,
}

impl Call {
    /// Counts the call and writes its access log line.
    fn ended(&self, code: tonic::Code) {
        self.metrics
            .grpc_handled(self.method.service, self.method.method, code);
        let caller = self
            .caller
            .as_ref()
            .map_or_else(|| "unknown".to_string(), ToString::to_string);
        tracing::info!(
            target: "podstart::access",
            service = self.method.service,
            method = self.method.method,
            %caller,
            listener = self.caller.as_ref().map_or("", |c| &*c.listener),
            code = ?code,
            took = ?self.since.elapsed(),
            "call"
        );
    }
}

struct Watched<RB> {
    inner: RB,
    call: Call,
    recorded: bool,
}

impl<RB> Watched<RB> {
    fn record(&mut self, code: tonic::Code) {
        if !self.recorded {
            self.recorded = true;
            self.call.ended(code);
        }
    }
}

impl<RB> Body for Watched<RB>
where
    RB: Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = RB::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, RB::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    self.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.record(tonic::Code::Internal),
            Poll::Ready(None) => self.record(tonic::Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<RB> Drop for Watched<RB> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        self.record(tonic::Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        let m = Method::from_path("/podstart.v1.PodStarter/StartPod");
        assert_eq!(m.service, "podstart.v1.PodStarter");
        assert_eq!(m.method, "StartPod");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        for path in [
            "/podstart.v1.PodStarter/Nope",
            "/made.up.Service/StartPod",
            "/",
            "",
            "/x/y/z",
            &format!("/{}", "a".repeat(10_000)),
        ] {
            let m = Method::from_path(path);
            assert_eq!((m.service, m.method), (UNKNOWN, UNKNOWN), "{path}");
        }
        let m = Method::from_path("/grpc.health.v1.Health/Check");
        assert_eq!((m.service, m.method), ("grpc.health.v1.Health", "Check"));
    }

    #[test]
    fn the_podstarter_methods_are_the_protos() {
        use prost::Message;
        let set =
            prost_types::FileDescriptorSet::decode(crate::proto::v1::FILE_DESCRIPTOR_SET).unwrap();
        let service = set
            .file
            .iter()
            .flat_map(|f| {
                let package = f.package().to_string();
                f.service
                    .iter()
                    .map(move |s| (format!("{package}.{}", s.name()), s))
            })
            .find(|(name, _)| name == "podstart.v1.PodStarter")
            .map(|(_, s)| s.clone())
            .unwrap();
        let mut from_proto: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        from_proto.sort_unstable();
        let mut known = KNOWN[0].1.to_vec();
        known.sort_unstable();
        assert_eq!(from_proto, known);
    }

    #[test]
    fn status_header_parses() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&h), Some(tonic::Code::NotFound));
    }
}
