//! Many callers sending the same StartPod at once, through a `podstart
//! serve` process against the simulated runtime (in this process, so its
//! call counts are read here).
//!
//!   PODSTART_BENCH_CALLERS=200 PODSTART_BENCH_ROUNDS=5 \
//!     cargo bench --bench identical_starts
//!
//! Each round: a new pod (two app containers, image present; RunPodSandbox
//! made to take 100 ms, as on containerd), `CALLERS` identical StartPods
//! sent together, each stream read to its end. Prints per round: the wall
//! time until every stream ended, what the streams ended with (PodStarted
//! by a start that made the pod, PodStarted of a pod already running,
//! PodFailed, or refused before the stream), and the CRI calls the runtime
//! saw. The pod is stopped (untimed) before the next round.
//! `PODSTART_BENCH_BIN` runs another podstart binary (e.g. an older build)
//! in place of this one. Measures, asserts nothing.
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, PodMetadata, PodRef, PodSpec, PullPolicy, StartPodRequest, StopPodRequest,
    pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::sim::{Fault, SimConfig, SimRuntime};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const IMAGE: &str = "registry.test/podstart/busybox:1.0";

fn request(round: usize) -> StartPodRequest {
    let container = |name: &str| {
        let mut c = Container {
            name: name.into(),
            image: IMAGE.into(),
            command: vec!["sleep".into(), "3600".into()],
            ..Default::default()
        };
        c.set_image_pull_policy(PullPolicy::IfNotPresent);
        c
    };
    StartPodRequest {
        pod: Some(PodSpec {
            metadata: Some(PodMetadata {
                name: format!("same-{round}"),
                namespace: "bench".into(),
                uid: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            }),
            containers: vec![container("app"), container("web")],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How one caller's request ended.
#[derive(Debug, Default, Clone, Copy)]
struct Outcomes {
    started: usize,
    already_running: usize,
    failed: usize,
    refused: usize,
}

async fn one_caller(client: PodStarterClient<Channel>, req: StartPodRequest) -> Outcomes {
    let mut out = Outcomes::default();
    let mut stream = match client.clone().start_pod(req).await {
        Ok(s) => s.into_inner(),
        Err(_) => {
            out.refused = 1;
            return out;
        }
    };
    while let Some(e) = stream.next().await {
        match e.map(|e| e.payload) {
            Ok(Some(Payload::PodStarted(d))) if d.already_running => out.already_running = 1,
            Ok(Some(Payload::PodStarted(_))) => out.started = 1,
            Ok(Some(Payload::PodFailed(_))) | Err(_) => out.failed = 1,
            _ => {}
        }
    }
    out
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

const OPS: [&str; 4] = [
    "RunPodSandbox",
    "CreateContainer",
    "ListPodSandbox",
    "ListContainers",
];

#[tokio::main]
async fn main() {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let callers = var("PODSTART_BENCH_CALLERS", 200);
    let rounds = var("PODSTART_BENCH_ROUNDS", 5);
    let bin = std::env::var("PODSTART_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_podstart").to_string());
    let dir = tempfile::tempdir().unwrap();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let sock = dir.path().join("sim.sock");
    let sim = SimRuntime::new(SimConfig {
        preloaded_images: vec![IMAGE.to_string()],
        ..Default::default()
    });
    sim.faults().set(
        "RunPodSandbox",
        Fault {
            latency: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let listener = SimRuntime::bind_unix(&sock).unwrap();
    tokio::spawn(
        sim.clone()
            .serve_unix_listener(listener, shutdown.clone().cancelled_owned()),
    );

    let socket = dir.path().join("podstart.sock");
    let _server = Server(
        Command::new(&bin)
            .args(["serve", "--log-level", "error"])
            .arg(format!("--runtime-endpoint=unix://{}", sock.display()))
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg("--pod-log-root")
            .arg(dir.path().join("pods"))
            .arg("--pod-state-root")
            .arg(dir.path().join("state"))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = PodStarterClient::new(
        podstart::endpoint::channel(&Address::Unix(socket), Peer::Podstart).unwrap(),
    );

    println!("binary: {bin}");
    println!(
        "callers: {callers}  rounds: {rounds}  pod: 2 containers, image present, RunPodSandbox 100 ms"
    );
    println!(
        "round  wall ms  started  already_running  failed  refused  {}",
        OPS.join("  ")
    );
    for round in 0..rounds {
        let req = request(round);
        let uid = req
            .pod
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .uid
            .clone();
        let before = OPS.map(|op| sim.calls(op));
        let t = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| tokio::spawn(one_caller(client.clone(), req.clone())))
            .collect();
        let mut total = Outcomes::default();
        for task in tasks {
            let o = task.await.unwrap();
            total.started += o.started;
            total.already_running += o.already_running;
            total.failed += o.failed;
            total.refused += o.refused;
        }
        let wall = t.elapsed();
        let calls: Vec<String> = OPS
            .iter()
            .zip(before)
            .map(|(op, b)| format!("{:>w$}", sim.calls(op) - b, w = op.len()))
            .collect();
        println!(
            "{round:>5}  {:>7.1}  {:>7}  {:>15}  {:>6}  {:>7}  {}",
            wall.as_secs_f64() * 1e3,
            total.started,
            total.already_running,
            total.failed,
            total.refused,
            calls.join("  ")
        );
        let stop = client
            .clone()
            .stop_pod(StopPodRequest {
                pod: Some(PodRef {
                    uid,
                    ..Default::default()
                }),
                grace_period_seconds: Some(0),
            })
            .await;
        if let Ok(stream) = stop {
            let _ = stream.into_inner().collect::<Vec<_>>().await;
        }
    }
    shutdown.cancel();
}
