//! `podstart serve` as a process: readiness while the runtime is away,
//! health and metrics endpoints, and draining open streams on SIGTERM.
//! Uses the built-in simulated runtime (`--runtime-endpoint sim`) or no
//! runtime at all; no root needed.
use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::net::{free_port, http_get};
use crate::process::{Proc, podstart_bin, sigterm, wait_for};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, EnvVar, PodMetadata, PodSpec, StartPodRequest, pod_starter_client::PodStarterClient,
    start_event::Payload,
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub(crate) struct Serve {
    pub(crate) child: Proc,
    pub(crate) socket: PathBuf,
    pub(crate) metrics: String,
    _dir: tempfile::TempDir,
}

async fn serve(runtime: &str) -> Serve {
    serve_with(runtime, &[]).await
}

/// `podstart serve` against `runtime`, with `extra` flags.
pub(crate) async fn serve_with(runtime: &str, extra: &[&str]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podstart.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = Command::new(podstart_bin())
        .args([
            "serve",
            "--runtime-endpoint",
            runtime,
            "--metrics-listen",
            &metrics,
        ])
        .arg(format!("--listen=unix://{}", socket.display()))
        .arg("--pod-log-root")
        .arg(dir.path().join("pods"))
        .arg("--pod-state-root")
        .arg(dir.path().join("state"))
        .arg("--pod-volume-root")
        .arg(dir.path().join("volumes"))
        .args(["--shutdown-grace", "20s"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Proc(child);
    // Listening, not just bound: the socket file appears before listen().
    wait_for(
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the API socket",
        WAIT,
    )
    .await;
    Serve {
        child,
        socket,
        metrics,
        _dir: dir,
    }
}

/// How long a `serve` process gets to come up.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// Status code of `GET path` on the metrics port (0 when nothing answers).
pub(crate) fn http_status(addr: &str, path: &str) -> u16 {
    http_get(addr, path).map_or(0, |(code, _)| code)
}

/// Body of `GET path` on the metrics port.
pub(crate) fn http_body(addr: &str, path: &str) -> String {
    http_get(addr, path).expect("an HTTP answer").1
}

pub(crate) async fn health(socket: &Path) -> ServingStatus {
    let channel = podstart::endpoint::connect(&Address::Unix(socket.to_path_buf()), Peer::Podstart)
        .await
        .unwrap();
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "podstart.v1.PodStarter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    resp.status()
}

#[tokio::test]
async fn without_a_runtime_it_keeps_running_and_reports_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let absent = format!("unix://{}", dir.path().join("no-runtime.sock").display());
    let mut s = serve(&absent).await;
    let metrics = s.metrics.clone();
    wait_for(
        || TcpStream::connect(&metrics).is_ok(),
        "the metrics port",
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        s.child.0.try_wait().unwrap().is_none(),
        "podstart must not exit"
    );
    assert_eq!(http_status(&s.metrics, "/healthz"), 200);
    assert_eq!(http_status(&s.metrics, "/readyz"), 503);
    assert_eq!(health(&s.socket).await, ServingStatus::NotServing);
    let text = http_body(&s.metrics, "/metrics");
    assert!(text.contains("podstart_runtime_ready 0"), "{text}");
    assert!(text.contains("podstart_runtime_operations_errors_total{code=\"Unavailable\",operation_type=\"version\"}"), "{text}");
}

#[tokio::test]
async fn with_the_simulated_runtime_it_is_ready() {
    let s = serve("sim").await;
    let metrics = s.metrics.clone();
    wait_for(
        || TcpStream::connect(&metrics).is_ok() && http_status(&metrics, "/readyz") == 200,
        "readiness",
        WAIT,
    )
    .await;
    assert_eq!(health(&s.socket).await, ServingStatus::Serving);
    let text = http_body(&s.metrics, "/metrics");
    assert!(text.contains("podstart_runtime_ready 1"), "{text}");
    assert!(text.contains("podstart_build_info{version="), "{text}");
}

#[tokio::test]
async fn sigterm_drains_a_start_in_progress() {
    let mut s = serve("sim").await;
    let channel = podstart::endpoint::connect(&Address::Unix(s.socket.clone()), Peer::Podstart)
        .await
        .unwrap();
    let mut client = PodStarterClient::new(channel);
    let slow_init = Container {
        name: "slow".into(),
        image: "registry.test/busybox:1".into(),
        env: vec![EnvVar {
            name: "PODSTART_SIM_RUN_MS".into(),
            value: "1500".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let app = Container {
        name: "app".into(),
        image: "registry.test/busybox:1".into(),
        ..Default::default()
    };
    let pod = PodSpec {
        metadata: Some(PodMetadata {
            name: "drain".into(),
            namespace: "default".into(),
            uid: "uid-drain".into(),
            ..Default::default()
        }),
        init_containers: vec![slow_init],
        containers: vec![app],
        ..Default::default()
    };
    let mut stream = client
        .start_pod(StartPodRequest {
            pod: Some(pod),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Wait until the slow init container runs, then ask podstart to stop.
    loop {
        let e = stream.next().await.unwrap().unwrap();
        if e.reason == "Started" && e.container_name == "slow" {
            break;
        }
    }
    assert!(sigterm(&s.child.0));
    let mut last = None;
    while let Some(e) = stream.next().await {
        last = Some(e.unwrap());
    }
    let last = last.expect("events after SIGTERM");
    assert!(
        matches!(last.payload, Some(Payload::PodStarted(_))),
        "the open start finished: {last:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = s.child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "podstart did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}
