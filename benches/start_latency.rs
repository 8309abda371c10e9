//! StartPod latency against the direct CRI calls it makes, in the same run.
//!
//!   PODSTART_BENCH_RUNTIME=unix:///tmp/podstart-lab/containerd.sock \
//!   PODSTART_BENCH_IMAGE=localhost/podstart-lab/busybox:latest \
//!     cargo bench --bench start_latency
//!
//! For each round: one pod with one container (image present) started
//! (a) by RunPodSandbox + CreateContainer + StartContainer straight to the
//! runtime, with the configs podstart would send, and (b) by StartPod
//! through a `podstart serve` process, timed until its PodStarted event.
//! Rounds alternate (a) and (b); each pod is removed (untimed) before the
//! next. Prints median, p90 and the ratio of medians. Measures, asserts
//! nothing. `PODSTART_BENCH_RUNTIME=sim` uses the simulated runtime.
use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, ContainerKind, PodMetadata, PodSpec, PullPolicy, StartPodRequest,
    pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::spec::{container as container_spec, sandbox as sandbox_spec};
use podstart::telemetry::Metrics;
use tokio_stream::StreamExt;

fn pod(round: usize, image: &str) -> PodSpec {
    let mut c = Container {
        name: "app".into(),
        image: image.into(),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    PodSpec {
        metadata: Some(PodMetadata {
            name: format!("bench-{round}"),
            namespace: "bench".into(),
            uid: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        }),
        containers: vec![c],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

async fn remove_pod(cri: &Cri, uid: &str) {
    let sel = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    for s in cri.list_pod_sandboxes(sel).await.unwrap_or_default() {
        let _ = cri.stop_pod_sandbox(&s.id).await;
        let _ = cri.remove_pod_sandbox(&s.id).await;
    }
}

async fn direct(
    cri: &Cri,
    spec: &PodSpec,
    image_ref: &str,
    log_root: &std::path::Path,
) -> Duration {
    let meta = spec.metadata.clone().unwrap_or_default();
    let log_dir = sandbox_spec::log_directory(log_root, &meta).unwrap();
    let config = sandbox_spec::pod_sandbox_config(spec, &log_dir);
    let t = Instant::now();
    let sandbox = cri.run_pod_sandbox(config.clone(), "").await.unwrap();
    let c = &spec.containers[0];
    let cfg = container_spec::container_config(&container_spec::ContainerContext {
        pod: spec,
        container: c,
        kind: ContainerKind::App,
        restart_count: 0,
        image: image_ref,
        target_container_id: None,
        mount_sources: &[],
        node: &podstart::node::Node::default(),
        pod_ips: &[],
    });
    let id = cri.create_container(&sandbox, cfg, config).await.unwrap();
    cri.start_container(&id).await.unwrap();
    t.elapsed()
}

async fn through_podstart(
    client: &PodStarterClient<tonic::transport::Channel>,
    spec: PodSpec,
) -> Duration {
    let t = Instant::now();
    let mut stream = client
        .clone()
        .start_pod(StartPodRequest {
            pod: Some(spec),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = stream.next().await {
        match e.unwrap().payload {
            Some(Payload::PodStarted(_)) => return t.elapsed(),
            Some(Payload::PodFailed(f)) => panic!("bench pod failed: {f:?}"),
            _ => {}
        }
    }
    panic!("stream ended early");
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = if v.len().is_multiple_of(2) {
        (ms(v[v.len() / 2 - 1]) + ms(v[v.len() / 2])) / 2.0
    } else {
        ms(v[v.len() / 2])
    };
    let p90 = ms(v[((v.len() as f64 * 0.9).ceil() as usize).saturating_sub(1)]);
    (median, p90)
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

#[tokio::main]
async fn main() {
    let runtime = std::env::var("PODSTART_BENCH_RUNTIME").unwrap_or_default();
    if runtime.is_empty() {
        eprintln!(
            "set PODSTART_BENCH_RUNTIME (a CRI endpoint, or `sim`); see the header of benches/start_latency.rs"
        );
        return;
    }
    let rounds: usize = std::env::var("PODSTART_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let image = std::env::var("PODSTART_BENCH_IMAGE")
        .unwrap_or_else(|_| "localhost/podstart-lab/busybox:latest".into());
    let dir = tempfile::tempdir().unwrap();
    let log_root: PathBuf = dir.path().join("pods");

    // The runtime: the lab's, or a simulated one in this process.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runtime_addr = if runtime == "sim" {
        let sock = dir.path().join("sim.sock");
        let sim = podstart::sim::SimRuntime::new(podstart::sim::SimConfig {
            preloaded_images: vec![image.clone()],
            ..Default::default()
        });
        let listener = podstart::sim::SimRuntime::bind_unix(&sock).unwrap();
        tokio::spawn(sim.serve_unix_listener(listener, shutdown.clone().cancelled_owned()));
        format!("unix://{}", sock.display())
    } else {
        runtime.clone()
    };
    let addr = Address::parse(&runtime_addr, Peer::Runtime).unwrap();
    let cri = Cri::new(
        &addr,
        &addr,
        CriSettings::default(),
        Metrics::new().unwrap(),
    )
    .unwrap();
    let image_ref = cri
        .image_status(&image)
        .await
        .unwrap()
        .map(|i| i.id)
        .expect("the bench image must be present (scripts/containerd-lab.sh start imports it)");

    let socket = dir.path().join("podstart.sock");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_podstart"))
            .args([
                "serve",
                "--runtime-endpoint",
                &runtime_addr,
                "--log-level",
                "warn",
            ])
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg("--pod-log-root")
            .arg(&log_root)
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

    // One warm-up of each, not counted.
    let warm = pod(999, &image);
    direct(&cri, &warm, &image_ref, &log_root).await;
    remove_pod(&cri, &warm.metadata.as_ref().unwrap().uid).await;
    let warm = pod(998, &image);
    let uid = warm.metadata.as_ref().unwrap().uid.clone();
    through_podstart(&client, warm).await;
    remove_pod(&cri, &uid).await;

    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let spec = pod(round, &image);
        let uid = spec.metadata.as_ref().unwrap().uid.clone();
        a.push(direct(&cri, &spec, &image_ref, &log_root).await);
        remove_pod(&cri, &uid).await;

        let spec = pod(round, &image);
        let uid = spec.metadata.as_ref().unwrap().uid.clone();
        b.push(through_podstart(&client, spec).await);
        remove_pod(&cri, &uid).await;
    }
    let (am, a90) = stats(a);
    let (bm, b90) = stats(b);
    println!("runtime: {runtime}  rounds: {rounds}  pod: 1 container, image present");
    println!(
        "direct CRI (RunPodSandbox+CreateContainer+StartContainer): median {am:8.1} ms  p90 {a90:8.1} ms"
    );
    println!(
        "podstart StartPod (until PodStarted):                     median {bm:8.1} ms  p90 {b90:8.1} ms"
    );
    println!("ratio of medians (podstart / direct): {:.2}", bm / am);
    shutdown.cancel();
}
