//! What recovery after a restart costs, against the simulated runtime:
//!
//!   cargo bench --bench recovery                  # 1000 pods
//!   PODSTART_BENCH_PODS=200 cargo bench --bench recovery
//!
//! One `Starter` starts the pods (three containers each, with commands and
//! env, restartPolicy Always) and is then cancelled, as a podstart that
//! went away; a second `Starter` against the same runtime runs
//! `recover()`, timed (it resumes every pod's supervision). Then the cost
//! of the stored request on listing: the size of one pod's stored request,
//! and ListPodSandbox over the pods with it against as many sandboxes
//! without it (median of 20 calls each, and the answer's encoded size).
//! Measures, asserts nothing but that every pod was recovered.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::Address;
use podstart::proto::v1::{
    Container, EnvVar, PodMetadata, PodSpec, PullPolicy, StartPodRequest, start_event::Payload,
};
use podstart::sim::{SimConfig, SimRuntime};
use podstart::spec::{sandbox as sandbox_spec, stored};
use podstart::start::{EventSink, FlowConfig, Parts, Starter};
use podstart::telemetry::Metrics;
use prost::Message;
use tokio::sync::mpsc;

const IMAGE: &str = "registry.test/bench:1";

fn pod(i: usize, namespace: &str) -> PodSpec {
    let containers = ["web", "sidecar-log", "worker"]
        .iter()
        .map(|name| {
            let mut c = Container {
                name: (*name).into(),
                image: IMAGE.into(),
                command: vec!["/bin/sh".into(), "-c".into(), format!("exec /app/{name}")],
                args: vec!["--port=8080".into(), "--verbose".into()],
                env: (0..4)
                    .map(|k| EnvVar {
                        name: format!("SETTING_{k}"),
                        value: format!("value-{k}-for-{name}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            c.set_image_pull_policy(PullPolicy::IfNotPresent);
            c
        })
        .collect();
    PodSpec {
        metadata: Some(PodMetadata {
            name: format!("bench-{i}"),
            namespace: namespace.into(),
            uid: format!("uid-{namespace}-{i}"),
            labels: HashMap::from([("app".to_string(), "bench".to_string())]),
            ..Default::default()
        }),
        containers,
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

async fn start(starter: &Starter, i: usize) {
    let req = StartPodRequest {
        pod: Some(pod(i, "bench")),
        ..Default::default()
    };
    let meta = req.pod.as_ref().and_then(|p| p.metadata.clone()).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let sink = EventSink::new(&meta, Some(tx), starter.bus());
    starter.start_pod(req, sink, None).await;
    let mut ok = false;
    while let Ok(Ok(e)) = rx.try_recv() {
        ok |= matches!(e.payload, Some(Payload::PodStarted(_)));
    }
    assert!(ok, "pod {i} did not start");
}

/// Median time of 20 ListPodSandbox calls selecting `namespace`, and the
/// encoded size of the answer.
async fn list_cost(cri: &Cri, namespace: &str) -> (Duration, usize, usize) {
    let sel = HashMap::from([(
        "io.kubernetes.pod.namespace".to_string(),
        namespace.to_string(),
    )]);
    let mut times = Vec::new();
    let mut items = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        items = cri.list_pod_sandboxes(sel.clone()).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let n = items.len();
    let bytes = cri::ListPodSandboxResponse { items }.encoded_len();
    (times[times.len() / 2], n, bytes)
}

#[tokio::main]
async fn main() {
    let pods: usize = std::env::var("PODSTART_BENCH_PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sim.sock");
    let sim = SimRuntime::new(SimConfig {
        preloaded_images: vec![IMAGE.into()],
        ..Default::default()
    });
    let listener = SimRuntime::bind_unix(&sock).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(sim.serve_unix_listener(listener, shutdown.clone().cancelled_owned()));
    let addr = Address::Unix(sock);
    let flow = FlowConfig {
        pod_log_root: dir.path().join("pods"),
        pod_state_root: dir.path().join("state"),
        ..FlowConfig::default()
    };
    let starter = || {
        let metrics = Metrics::new().unwrap();
        let cri = Cri::new(&addr, &addr, CriSettings::default(), metrics.clone()).unwrap();
        Starter::new(Parts::with_defaults(cri, flow.clone(), metrics))
    };

    let first = starter();
    let t = Instant::now();
    for i in 0..pods {
        start(&first, i).await;
    }
    let started = t.elapsed();
    first.cancel_all();

    let next = starter();
    let t = Instant::now();
    let recovered = next.recover().await.unwrap();
    let took = t.elapsed();
    assert_eq!(recovered.supervised, pods, "{recovered:?}");
    println!(
        "pods: {pods} (simulated runtime, 3 containers each, restartPolicy Always), \
         started one at a time in {:.1} s",
        started.as_secs_f64()
    );
    println!(
        "recover(): {:.0} ms for {pods} pods ({:.2} ms per pod), every supervision resumed",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / pods as f64
    );
    next.cancel_all();

    // The same sandboxes without the stored request, made straight.
    let bare = Cri::new(
        &addr,
        &addr,
        CriSettings::default(),
        Metrics::new().unwrap(),
    )
    .unwrap();
    for i in 0..pods {
        let spec = pod(i, "bare");
        let log_dir = dir.path().join("bare");
        bare.run_pod_sandbox(sandbox_spec::pod_sandbox_config(&spec, &log_dir), "")
            .await
            .unwrap();
    }
    let one = stored::request_annotations(
        &StartPodRequest {
            pod: Some(pod(0, "bench")),
            ..Default::default()
        },
        &flow.pod_state_root.display().to_string(),
    )
    .unwrap();
    println!(
        "stored request of one pod: {} bytes of annotation text (limit {})",
        one.values().map(String::len).sum::<usize>(),
        stored::STORED_REQUEST_MAX
    );
    for (what, ns) in [("with the stored request", "bench"), ("without", "bare")] {
        let (median, n, bytes) = list_cost(&bare, ns).await;
        println!(
            "ListPodSandbox of {n} sandboxes {what}: median {:.2} ms, answer {:.1} KiB",
            median.as_secs_f64() * 1e3,
            bytes as f64 / 1024.0
        );
    }
    shutdown.cancel();
}
