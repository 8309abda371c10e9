//! Time to PodStarted for a pod whose images are all absent: the kubelet's
//! way (each image pulled at its container's turn, pulls serialized) against
//! podstart's (every image pre-pulled at once when the request arrives, no
//! pull limit), in the same run.
//!
//!   eval "$(scripts/containerd-lab.sh start --export)"
//!   PODSTART_BENCH_RUNTIME=$CONTAINER_RUNTIME_ENDPOINT PODSTART_BENCH_REGISTRY=$REGISTRY \
//!     cargo bench --bench pull_latency
//!
//! The pod: one init container (`true`) and three app containers
//! (`sleep 3600`), each with its own ~21 MiB image (busybox + 4 layers of
//! random data, podstart-lab/big-{1..4}:1 from the lab's loopback registry).
//! Before each round the images are removed from the node (untimed); rounds
//! alternate the two modes. The start flow runs in-process against the
//! runtime. Prints medians and their ratio. Measures, asserts nothing.
use std::time::{Duration, Instant};

use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::{Address, Peer};
use podstart::images::{Puller, PullerConfig};
use podstart::proto::v1::{
    Container, PodMetadata, PodSpec, PullPolicy, StartOptions, StartPodRequest,
    start_event::Payload,
};
use podstart::start::{DEFAULT_PULLER, EventSink, FlowConfig, Parts, Starter};
use podstart::telemetry::Metrics;

const IMAGES: [&str; 4] = ["big-1", "big-2", "big-3", "big-4"];

fn image(registry: &str, name: &str) -> String {
    format!("{registry}/podstart-lab/{name}:1")
}

fn pod(registry: &str, round: usize) -> PodSpec {
    let c = |name: &str, img: &str, cmd: &[&str]| {
        let mut c = Container {
            name: name.into(),
            image: image(registry, img),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        c.set_image_pull_policy(PullPolicy::IfNotPresent);
        c
    };
    PodSpec {
        metadata: Some(PodMetadata {
            name: format!("pull-bench-{round}"),
            namespace: "bench".into(),
            uid: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        }),
        init_containers: vec![c("init", IMAGES[0], &["true"])],
        containers: vec![
            c("app-1", IMAGES[1], &["sleep", "3600"]),
            c("app-2", IMAGES[2], &["sleep", "3600"]),
            c("app-3", IMAGES[3], &["sleep", "3600"]),
        ],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

/// Runs one StartPod in-process; the time to its terminal event.
async fn start(starter: &Starter, req: StartPodRequest) -> Duration {
    let meta = req
        .pod
        .as_ref()
        .and_then(|p| p.metadata.clone())
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let sink = EventSink::new(&meta, Some(tx), starter.bus());
    let began = Instant::now();
    let run = starter.start_pod(req, sink, None);
    let watch = async {
        while let Some(Ok(e)) = rx.recv().await {
            if e.is_terminal() {
                if let Some(Payload::PodFailed(f)) = &e.payload {
                    panic!("pod failed: {} {}", f.reason, f.message);
                }
                return began.elapsed();
            }
        }
        panic!("no terminal event");
    };
    let (_, took) = tokio::join!(run, watch);
    took
}

async fn stop(starter: &Starter, meta: PodMetadata) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let sink = EventSink::new(&meta, Some(tx), starter.bus());
    let drain = async { while rx.recv().await.is_some() {} };
    tokio::join!(starter.stop_pod(meta, Some(0), sink), drain);
}

/// Removes an image by its id, so every name of it (tag and digest
/// references) goes and its content is collected.
async fn uncache(cri: &Cri, name: &str) {
    if let Some(found) = cri.image_status(name).await.expect("image status") {
        cri.remove_image(&found.id).await.expect("remove image");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let Ok(runtime) = std::env::var("PODSTART_BENCH_RUNTIME") else {
        eprintln!("skipping: set PODSTART_BENCH_RUNTIME (the lab's CRI endpoint)");
        return;
    };
    let registry =
        std::env::var("PODSTART_BENCH_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5400".into());
    let rounds: usize = std::env::var("PODSTART_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let addr = Address::parse(&runtime, Peer::Runtime).expect("runtime endpoint");
    let metrics = Metrics::new().expect("metrics");
    let cri = Cri::new(&addr, &addr, CriSettings::default(), metrics.clone()).expect("cri");
    let log_root = tempfile::tempdir().expect("tempdir");
    let starter = |max_parallel| {
        let flow = FlowConfig {
            pod_log_root: log_root.path().to_path_buf(),
            ..FlowConfig::default()
        };
        let mut parts = Parts::with_defaults(cri.clone(), flow, metrics.clone());
        parts.puller = Puller::new(
            cri.clone(),
            PullerConfig {
                max_parallel,
                content_endpoint: Some(addr.clone()),
                ..DEFAULT_PULLER
            },
        );
        Starter::new(parts)
    };
    // The kubelet's defaults: serializeImagePulls, no pre-pull.
    let kubelet = starter(1);
    let podstart = starter(0);

    let mut times = [Vec::new(), Vec::new()];
    for round in 0..rounds * 2 {
        let mode = round % 2;
        for name in IMAGES {
            uncache(&cri, &image(&registry, name)).await;
        }
        let spec = pod(&registry, round);
        let meta = spec.metadata.clone().unwrap_or_default();
        let req = StartPodRequest {
            pod: Some(spec),
            options: Some(StartOptions {
                no_pre_pull: mode == 0,
                no_pull_progress: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let starter = if mode == 0 { &kubelet } else { &podstart };
        let took = start(starter, req).await;
        println!(
            "round {:2} {:<22} {:8.1} ms",
            round / 2 + 1,
            if mode == 0 {
                "kubelet-like"
            } else {
                "pre-pull + parallel"
            },
            took.as_secs_f64() * 1e3
        );
        times[mode].push(took);
        stop(starter, meta).await;
    }
    let [k, p] = times;
    let (k, p) = (median(k), median(p));
    println!(
        "medians over {rounds} rounds: kubelet-like {:.1} ms, pre-pull + parallel {:.1} ms, ratio {:.2}",
        k.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        p.as_secs_f64() / k.as_secs_f64()
    );
}
