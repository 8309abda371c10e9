//! What an operator sees of a running `podstart serve`: the metrics
//! families after real starts (clean for promtool), readiness following the
//! runtime away and back, traces exported over OTLP continuing the
//! caller's trace, and reflection for grpcurl. The runtime is a separate
//! `podstart sim-runtime` process, so it can be killed and restarted.
//! promtool and grpcurl come from scripts/test.sh; with
//! PODSTART_REQUIRE_TOOLS=1 their absence fails the tests.
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, EnvVar, PodMetadata, PodSpec, PullPolicy, StartEvent, StartPodRequest,
    pod_starter_client::PodStarterClient,
};
use tokio_stream::StreamExt;

use crate::net::{free_port, http_get};
use crate::process::{Proc, podstart_bin, sigterm, wait_for};

fn ready(metrics: &str) -> Option<u16> {
    http_get(metrics, "/readyz").map(|(c, _)| c)
}

fn sim_runtime(socket: &Path) -> Proc {
    Proc(
        Command::new(podstart_bin())
            .args(["sim-runtime", "--listen"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

struct Node {
    _dir: tempfile::TempDir,
    runtime_sock: PathBuf,
    api_sock: PathBuf,
    metrics: String,
    runtime: Option<Proc>,
    serve: Proc,
}

async fn node(extra: &[&str]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let runtime_sock = dir.path().join("runtime.sock");
    let api_sock = dir.path().join("podstart.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let runtime = sim_runtime(&runtime_sock);
    let serve = Proc(
        Command::new(podstart_bin())
            .arg("serve")
            .arg(format!(
                "--runtime-endpoint=unix://{}",
                runtime_sock.display()
            ))
            .arg(format!("--listen=unix://{}", api_sock.display()))
            .arg(format!("--metrics-listen={metrics}"))
            .arg("--pod-log-root")
            .arg(dir.path().join("pods"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let m = metrics.clone();
    wait_for(
        || ready(&m) == Some(200),
        "podstart ready",
        Duration::from_secs(20),
    )
    .await;
    Node {
        _dir: dir,
        runtime_sock,
        api_sock,
        metrics,
        runtime: Some(runtime),
        serve,
    }
}

fn app(name: &str, image: &str, env: &[(&str, &str)]) -> Container {
    let mut c = Container {
        name: name.into(),
        image: image.into(),
        env: env
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.to_string(),
                value: v.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    c
}

fn pod(name: &str, containers: Vec<Container>) -> StartPodRequest {
    StartPodRequest {
        pod: Some(PodSpec {
            metadata: Some(PodMetadata {
                name: name.into(),
                namespace: "obs".into(),
                uid: format!("uid-{name}"),
                ..Default::default()
            }),
            init_containers: vec![app(
                "init",
                "registry.test/init:1",
                &[("PODSTART_SIM_RUN_MS", "20")],
            )],
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run(
    client: &PodStarterClient<tonic::transport::Channel>,
    req: tonic::Request<StartPodRequest>,
) -> Vec<StartEvent> {
    let mut stream = client.clone().start_pod(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.unwrap());
    }
    out
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("PODSTART_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (PODSTART_REQUIRE_TOOLS=1) but not on PATH"
        );
        eprintln!("skipping the {name} part: {name} not on PATH (scripts/test.sh installs it)");
    }
    found
}

#[tokio::test]
async fn metrics_cover_every_family_and_readiness_follows_the_runtime() {
    let mut n = node(&[]).await;
    let channel = podstart::endpoint::connect(&Address::Unix(n.api_sock.clone()), Peer::Podstart)
        .await
        .unwrap();
    let client = PodStarterClient::new(channel);

    // One pod that starts (pulling its images), one whose container cannot
    // start, one whose image may not be pulled.
    run(
        &client,
        tonic::Request::new(pod("good", vec![app("app", "registry.test/app:1", &[])])),
    )
    .await;
    run(
        &client,
        tonic::Request::new(pod(
            "broken",
            vec![app(
                "app",
                "registry.test/app:1",
                &[("PODSTART_SIM_START_ERROR", "boom")],
            )],
        )),
    )
    .await;
    let mut never = app("app", "registry.test/absent:1", &[]);
    never.set_image_pull_policy(PullPolicy::Never);
    run(&client, tonic::Request::new(pod("never", vec![never]))).await;

    // The runtime goes away: not ready, and calls are retried; it returns: ready.
    drop(n.runtime.take());
    let m = n.metrics.clone();
    wait_for(
        || ready(&m) == Some(503),
        "not ready after the runtime died",
        Duration::from_secs(20),
    )
    .await;
    n.runtime = Some(sim_runtime(&n.runtime_sock));
    wait_for(
        || ready(&m) == Some(200),
        "ready after the runtime returned",
        Duration::from_secs(20),
    )
    .await;

    let (_, text) = http_get(&n.metrics, "/metrics").unwrap();
    for family in [
        "podstart_runtime_operations_total{",
        "podstart_runtime_operations_duration_seconds_bucket{",
        "podstart_runtime_operations_errors_total{",
        "podstart_started_pods_total 3",
        "podstart_started_pods_errors_total{reason=\"RunContainerError\"} 1",
        "podstart_started_pods_errors_total{reason=\"ErrImageNeverPull\"} 1",
        "podstart_started_containers_total{container_type=\"container\"}",
        "podstart_started_containers_total{container_type=\"init_container\"} 3",
        "podstart_started_containers_errors_total{code=\"RunContainerError\",container_type=\"container\"} 1",
        "podstart_pod_start_duration_seconds_count 1",
        "podstart_pod_start_sli_duration_seconds_count 1",
        "podstart_image_pull_duration_seconds_bucket{image_size_in_bytes=\"0-10MB\"",
        "podstart_image_pull_bytes_total ",
        "podstart_start_pod_in_flight 0",
        "podstart_grpc_server_handled_total{grpc_code=\"Ok\",grpc_method=\"StartPod\",grpc_service=\"podstart.v1.PodStarter\"} 3",
        "podstart_runtime_retries_total{operation_type=\"version\"}",
        "podstart_runtime_ready 1",
        "podstart_build_info{version=",
    ] {
        assert!(text.contains(family), "missing {family:?} in\n{text}");
    }
    for id in ["uid-good", "registry.test", "app"] {
        assert!(
            !text.contains(&format!("\"{id}")),
            "labels carry no ids or names ({id})"
        );
    }

    if let Some(promtool) = tool("promtool") {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An OTLP trace collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector {
    got: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.got.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test]
async fn spans_arrive_over_otlp_with_the_callers_trace_id() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let endpoint = format!("--otlp-endpoint=http://127.0.0.1:{port}");
    let n = node(&[&endpoint]).await;
    let channel = podstart::endpoint::connect(&Address::Unix(n.api_sock.clone()), Peer::Podstart)
        .await
        .unwrap();
    let client = PodStarterClient::new(channel);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut req = tonic::Request::new(pod("traced", vec![app("app", "registry.test/app:1", &[])]));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    run(&client, req).await;

    // SIGTERM: podstart drains and flushes its spans before exiting.
    assert!(sigterm(&n.serve.0));
    let got = collector.got.clone();
    wait_for(
        || {
            got.lock().unwrap().iter().any(|r| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .any(|s| s.name == "StartPod")
            })
        },
        "spans at the collector",
        Duration::from_secs(20),
    )
    .await;
    let spans: Vec<_> = got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.resource_spans.clone())
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let request = spans
        .iter()
        .find(|s| s.name == "StartPod")
        .unwrap_or_else(|| {
            panic!(
                "a StartPod span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        hex(&request.trace_id),
        trace_id,
        "the caller's trace continues"
    );
    assert_eq!(
        hex(&request.parent_span_id),
        parent_id,
        "child of the caller's span"
    );
    // The start's CRI calls belong to the caller's trace (the readiness
    // checks have traces of their own).
    let cri_spans: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("cri ") && hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<_> = cri_spans.iter().map(|s| s.name.as_str()).collect();
    for op in [
        "cri run_podsandbox",
        "cri create_container",
        "cri start_container",
    ] {
        assert!(names.contains(&op), "{op} in {names:?}");
    }
    assert!(
        spans
            .iter()
            .any(|s| s.name == "sandbox" && hex(&s.trace_id) == trace_id),
        "a span per step"
    );
    assert!(
        cri_spans
            .iter()
            .all(|s| s.attributes.iter().any(|a| a.key == "attempt")),
        "CRI spans carry the attempt"
    );
}

#[tokio::test]
async fn grpcurl_lists_the_services_through_reflection() {
    let Some(grpcurl) = tool("grpcurl") else {
        return;
    };
    let n = node(&[]).await;
    let out = Command::new(grpcurl)
        .args(["-plaintext", "-authority", "localhost", "-unix"])
        .arg(&n.api_sock)
        .arg("list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in ["podstart.v1.PodStarter", "grpc.health.v1.Health"] {
        assert!(text.lines().any(|l| l == service), "{service} in {text}");
    }
}
