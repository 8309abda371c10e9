//! `podstart serve` as a process: readiness while the runtime is away,
//! health and metrics endpoints, and draining open streams on SIGTERM.
//! Uses the built-in simulated runtime (`--runtime-endpoint sim`) or no
//! runtime at all; no root needed.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, EnvVar, PodMetadata, PodSpec, StartPodRequest, pod_starter_client::PodStarterClient,
    start_event::Payload,
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

struct Serve {
    child: Child,
    socket: PathBuf,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(runtime: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podstart.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_podstart"))
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
        .args(["--shutdown-grace", "20s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| socket.exists(), "the API socket").await;
    Serve {
        child,
        socket,
        metrics,
        _dir: dir,
    }
}

async fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Status code and body of `GET path` on the metrics port.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

async fn health(socket: &Path) -> ServingStatus {
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
    wait_for(|| TcpStream::connect(&metrics).is_ok(), "the metrics port").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "podstart must not exit"
    );
    assert_eq!(http_get(&s.metrics, "/healthz").0, 200);
    assert_eq!(http_get(&s.metrics, "/readyz").0, 503);
    assert_eq!(health(&s.socket).await, ServingStatus::NotServing);
    let (_, text) = http_get(&s.metrics, "/metrics");
    assert!(text.contains("podstart_runtime_ready 0"), "{text}");
    assert!(text.contains("podstart_runtime_operations_errors_total{code=\"Unavailable\",operation_type=\"version\"}"), "{text}");
}

#[tokio::test]
async fn with_the_simulated_runtime_it_is_ready() {
    let s = serve("sim").await;
    let metrics = s.metrics.clone();
    wait_for(
        || TcpStream::connect(&metrics).is_ok() && http_get(&metrics, "/readyz").0 == 200,
        "readiness",
    )
    .await;
    assert_eq!(health(&s.socket).await, ServingStatus::Serving);
    let (_, text) = http_get(&s.metrics, "/metrics");
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
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
        if let Some(status) = s.child.try_wait().unwrap() {
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
