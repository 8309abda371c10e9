//! What the CRI middleware costs: StartPod against the simulated runtime
//! with the full tower stack (retry, trace, metrics, deadline, concurrency
//! limit) and with calls sent straight to the channel, in the same run.
//!
//!   cargo bench --bench stack_overhead            # 1000 pods per mode
//!   PODSTART_BENCH_PODS=200 cargo bench --bench stack_overhead
//!
//! Pods go one at a time through `Starter::start_pod` (no API hop), in
//! alternating blocks of 50 per mode; each pod is stopped afterwards (not
//! timed). Prints the median and p90 start latency and pods/s per mode.
use std::time::{Duration, Instant};

use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::Address;
use podstart::proto::v1::{
    Container, PodMetadata, PodSpec, PullPolicy, StartPodRequest, start_event::Payload,
};
use podstart::sim::{SimConfig, SimRuntime};
use podstart::start::{EventSink, FlowConfig, Parts, Starter};
use podstart::telemetry::Metrics;
use tokio::sync::mpsc;

const IMAGE: &str = "registry.test/bench:1";

fn request(i: usize) -> StartPodRequest {
    let mut c = Container {
        name: "app".into(),
        image: IMAGE.into(),
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    StartPodRequest {
        pod: Some(PodSpec {
            metadata: Some(PodMetadata {
                name: format!("bench-{i}"),
                namespace: "bench".into(),
                uid: format!("uid-bench-{i}"),
                ..Default::default()
            }),
            containers: vec![c],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Starts pod `i`, returning how long until its terminal event.
async fn start(starter: &Starter, i: usize) -> Duration {
    let req = request(i);
    let meta = req.pod.as_ref().and_then(|p| p.metadata.clone()).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let sink = EventSink::new(&meta, Some(tx), starter.bus());
    let t = Instant::now();
    starter.start_pod(req, sink, None).await;
    let took = t.elapsed();
    let mut ok = false;
    while let Ok(Ok(e)) = rx.try_recv() {
        ok |= matches!(e.payload, Some(Payload::PodStarted(_)));
    }
    assert!(ok, "pod {i} did not start");
    took
}

async fn stop(starter: &Starter, i: usize) {
    let meta = PodMetadata {
        name: format!("bench-{i}"),
        namespace: "bench".into(),
        uid: format!("uid-bench-{i}"),
        ..Default::default()
    };
    let sink = EventSink::new(&meta, None, starter.bus());
    starter.stop_pod(meta, Some(0), sink).await;
}

fn median_p90(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 9 / 10).min(v.len() - 1)]),
    )
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
    let starter = |bare: bool| {
        let metrics = Metrics::new().unwrap();
        let settings = CriSettings {
            bare,
            ..CriSettings::default()
        };
        let cri = Cri::new(&addr, &addr, settings, metrics.clone()).unwrap();
        let flow = FlowConfig {
            pod_log_root: dir.path().join("pods"),
            ..FlowConfig::default()
        };
        Starter::new(Parts::with_defaults(cri, flow, metrics))
    };
    let (full, bare) = (starter(false), starter(true));

    // Warm both up.
    for (k, s) in [&full, &bare].into_iter().enumerate() {
        let i = 1_000_000 + k;
        start(s, i).await;
        stop(s, i).await;
    }
    let (mut full_times, mut bare_times) = (Vec::new(), Vec::new());
    let (mut full_total, mut bare_total) = (Duration::ZERO, Duration::ZERO);
    let block = 50;
    let mut i = 0;
    while full_times.len() < pods {
        for (s, times, total) in [
            (&full, &mut full_times, &mut full_total),
            (&bare, &mut bare_times, &mut bare_total),
        ] {
            for _ in 0..block.min(pods - times.len()) {
                let took = start(s, i).await;
                times.push(took);
                *total += took;
                stop(s, i).await;
                i += 1;
            }
        }
    }
    let (fm, f90) = median_p90(full_times.clone());
    let (bm, b90) = median_p90(bare_times.clone());
    println!(
        "pods per mode: {pods}  (simulated runtime, one container, image present, one at a time)"
    );
    println!(
        "full stack : median {fm:.3} ms  p90 {f90:.3} ms  {:.0} pods/s",
        full_times.len() as f64 / full_total.as_secs_f64()
    );
    println!(
        "bypassed   : median {bm:.3} ms  p90 {b90:.3} ms  {:.0} pods/s",
        bare_times.len() as f64 / bare_total.as_secs_f64()
    );
    println!("added latency (medians): {:+.1}%", (fm / bm - 1.0) * 100.0);
    shutdown.cancel();
}
