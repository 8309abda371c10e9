//! Soak: many StartPods against the simulated runtime with faults, each
//! pod stopped as soon as its start ends.
//!
//!   scripts/soak.sh            # 20,000 pods
//!   scripts/soak.sh 5000
//!
//! The simulated runtime, podstart's API (served over a unix socket with
//! tonic) and the client (the generated `PodStarterClient`) run in this one
//! process. `PODSTART_SOAK_PODS` pods (one container each) are started at
//! concurrency 64; when a start's stream ends the pod is stopped with
//! StopPod (again, up to 10 times, while StopPod itself fails; NOT_FOUND
//! means the start made no sandbox). Meanwhile
//! faults come and go at random moments on the CRI methods of the flow:
//! errors on a share of the calls and latency spikes, for about 1% of all
//! CRI calls; and once, half way, the runtime goes away (its server stops,
//! its socket is removed) and serves again on the same socket 1.5 s later.
//!
//! Prints: pods started; failed with a terminal event, by reason;
//! unaccounted (an RPC error with no stream, a stream that ended without
//! exactly one terminal event, or one that did not end in 120 s); pods
//! whose uid ever had two ready sandboxes or two running containers of one
//! name at once in the sim, and what the sim holds after every stop; RSS of
//! the process at 1k / 5k / 10k / 20k pods; StartPod p50/p99; pods/s.
//! Measures; asserts nothing.
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use podstart::api::PodStarterService;
use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, PodMetadata, PodRef, PodSpec, PullPolicy, StartEvent, StartPodRequest,
    StopPodRequest, pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::sim::{Fault, SimConfig, SimRuntime};
use podstart::start::{FlowConfig, Parts, Starter};
use podstart::telemetry::Metrics;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::Channel;

const IMAGE: &str = "registry.test/soak/app:1";
const CONCURRENCY: usize = 64;
/// A stream that has not ended by then counts as a hang.
const STREAM_DEADLINE: Duration = Duration::from_secs(120);
/// How long the runtime stays away when it restarts.
const RESTART_GAP: Duration = Duration::from_millis(1500);
/// The share of a method's calls that fail while it has an error fault.
const ERROR_SHARE: f64 = 0.15;
/// StopPods sent for one pod at most.
const STOP_ATTEMPTS: usize = 10;

/// The CRI methods a start and a stop call, where faults go.
const METHODS: [&str; 11] = [
    "RunPodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "ListContainers",
    "ContainerStatus",
    "StopContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
    "ImageStatus",
];
const CODES: [tonic::Code; 4] = [
    tonic::Code::Unavailable,
    tonic::Code::Internal,
    tonic::Code::DeadlineExceeded,
    tonic::Code::Unknown,
];

fn pod(i: usize) -> PodSpec {
    let mut c = Container {
        name: "app".into(),
        image: IMAGE.into(),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    PodSpec {
        metadata: Some(PodMetadata {
            name: format!("soak-{i}"),
            namespace: "soak".into(),
            uid: format!("uid-soak-{i}"),
            ..Default::default()
        }),
        containers: vec![c],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// How one stream ended.
enum Outcome {
    /// Exactly one terminal event, last: its payload kind and reason.
    Terminal { started: bool, reason: String },
    /// Anything else, described.
    Unaccounted(String),
}

async fn drain(
    result: Result<tonic::Response<tonic::Streaming<StartEvent>>, tonic::Status>,
) -> Outcome {
    let mut stream = match result {
        Ok(r) => r.into_inner(),
        Err(status) => return Outcome::Unaccounted(format!("RPC error, no stream: {status}")),
    };
    let deadline = tokio::time::Instant::now() + STREAM_DEADLINE;
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Outcome::Unaccounted("stream did not end in 120 s".into()),
            Ok(None) => break,
            Ok(Some(Ok(e))) => events.push(e),
            Ok(Some(Err(status))) => {
                return Outcome::Unaccounted(format!(
                    "stream error after {} events: {status}",
                    events.len()
                ));
            }
        }
    }
    let terminals = events.iter().filter(|e| e.is_terminal()).count();
    match events.last() {
        Some(last) if terminals == 1 && last.is_terminal() => Outcome::Terminal {
            started: matches!(last.payload, Some(Payload::PodStarted(_))),
            reason: last.reason.clone(),
        },
        _ => Outcome::Unaccounted(format!(
            "{terminals} terminal events in {} (last {:?})",
            events.len(),
            events.last().map(|e| &e.reason)
        )),
    }
}

#[derive(Default)]
struct Tally {
    started: usize,
    failed: BTreeMap<String, usize>,
    unaccounted: Vec<(String, String)>,
    stop_retries: usize,
    stop_not_found: usize,
    stop_gave_up: Vec<(String, String)>,
    latencies: Vec<Duration>,
    rss: Vec<(usize, f64)>,
}

/// The sim's server on `sock`, stopped by the returned token.
fn serve_sim(
    sim: &SimRuntime,
    sock: &Path,
    shutdown: &CancellationToken,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = shutdown.child_token();
    let listener = SimRuntime::bind_unix(sock).unwrap();
    let task = tokio::spawn({
        let (sim, token) = (sim.clone(), token.clone());
        async move {
            let _ = sim
                .serve_unix_listener(listener, token.cancelled_owned())
                .await;
        }
    });
    (token, task)
}

/// Faults at random moments until `done`: every 100–400 ms one CRI method
/// gets, for 50–300 ms, either errors on 15% of its calls or a latency
/// spike of 100–800 ms on all of them. Returns the calls that were faulted
/// (errors: the expected share of the window's calls).
async fn chaos(sim: SimRuntime, done: CancellationToken) -> (f64, u64) {
    let faulted = Arc::new(Mutex::new(0.0_f64));
    let windows = AtomicU64::new(0);
    let tasks = TaskTracker::new();
    while !done.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..400))).await;
        let method = METHODS[fastrand::usize(..METHODS.len())];
        let spike = fastrand::u8(..3) == 0;
        let fault = if spike {
            Fault {
                latency: Duration::from_millis(fastrand::u64(100..800)),
                ..Default::default()
            }
        } else {
            Fault {
                error: Some(CODES[fastrand::usize(..CODES.len())]),
                probability: ERROR_SHARE,
                ..Default::default()
            }
        };
        let share = if spike { 1.0 } else { ERROR_SHARE };
        let before = sim.calls(method);
        sim.faults().set(method, fault);
        windows.fetch_add(1, Ordering::Relaxed);
        let (sim, faulted) = (sim.clone(), faulted.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..300))).await;
            sim.faults().clear(method);
            let calls = sim.calls(method).saturating_sub(before);
            *faulted.lock().unwrap() += calls as f64 * share;
        });
    }
    tasks.close();
    tasks.wait().await;
    sim.faults().clear_all();
    let total = *faulted.lock().unwrap();
    (total, windows.load(Ordering::Relaxed))
}

/// How a pod's stop ended.
enum Stopped {
    /// PodStopped, after this many failed StopPods.
    Stopped(usize),
    /// NOT_FOUND: the pod has no sandbox (its start failed before one was
    /// made), after this many failed StopPods.
    NotFound(usize),
}

/// StopPod until it answers PodStopped or NOT_FOUND, up to `STOP_ATTEMPTS`
/// times 500 ms apart (longer than the runtime's restart).
async fn stop(client: &PodStarterClient<Channel>, uid: &str) -> Result<Stopped, String> {
    let mut last = String::new();
    for attempt in 0..STOP_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let result = client
            .clone()
            .stop_pod(StopPodRequest {
                pod: Some(PodRef {
                    uid: uid.to_string(),
                    ..Default::default()
                }),
                grace_period_seconds: Some(0),
            })
            .await;
        if let Err(status) = &result
            && status.code() == tonic::Code::NotFound
        {
            return Ok(Stopped::NotFound(attempt));
        }
        match drain(result).await {
            Outcome::Terminal { reason, .. } if reason == "PodStopped" => {
                return Ok(Stopped::Stopped(attempt));
            }
            Outcome::Terminal { reason, .. } => last = reason,
            Outcome::Unaccounted(what) => last = what,
        }
    }
    Err(last)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PODSTART_SOAK_PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();

    let sim_sock = dir.path().join("sim.sock");
    let sim = SimRuntime::new(SimConfig {
        preloaded_images: vec![IMAGE.into()],
        ..Default::default()
    });
    let serving = Arc::new(Mutex::new(Some(serve_sim(&sim, &sim_sock, &shutdown))));

    let metrics = Metrics::new().unwrap();
    let runtime = Address::Unix(sim_sock.clone());
    let cri = Cri::new(&runtime, &runtime, CriSettings::default(), metrics.clone()).unwrap();
    let flow = FlowConfig {
        pod_log_root: dir.path().join("pods"),
        pod_state_root: dir.path().join("state"),
        ..FlowConfig::default()
    };
    let starter = Starter::new(Parts::with_defaults(cri.clone(), flow, metrics));
    let service = PodStarterService::new(starter.clone(), TaskTracker::new());
    let api_sock = dir.path().join("podstart.sock");
    let api = tokio::net::UnixListener::bind(&api_sock).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(api),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let client = PodStarterClient::new(
        podstart::endpoint::channel(&Address::Unix(api_sock), Peer::Podstart).unwrap(),
    );

    let chaos_done = CancellationToken::new();
    let chaos_task = tokio::spawn(chaos(sim.clone(), chaos_done.clone()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let finished = AtomicUsize::new(0);
    let restarted_at = Mutex::new(None);
    let checkpoints: Vec<usize> = [1_000, 5_000, 10_000, 20_000]
        .into_iter()
        .filter(|c| *c < n)
        .chain([n])
        .collect();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let began = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, |i| {
            let (client, tally, sim, serving, shutdown) =
                (&client, &tally, &sim, &serving, &shutdown);
            let (finished, restarted_at, checkpoints, sim_sock) =
                (&finished, &restarted_at, &checkpoints, &sim_sock);
            async move {
                let spec = pod(i);
                let uid = spec.metadata.as_ref().unwrap().uid.clone();
                let t = Instant::now();
                let result = client
                    .clone()
                    .start_pod(StartPodRequest {
                        pod: Some(spec),
                        ..Default::default()
                    })
                    .await;
                let outcome = drain(result).await;
                let took = t.elapsed();
                let stopped = stop(client, &uid).await;
                let done = {
                    let mut tally = tally.lock().unwrap();
                    tally.latencies.push(took);
                    match outcome {
                        Outcome::Terminal { started: true, .. } => tally.started += 1,
                        Outcome::Terminal { reason, .. } => {
                            *tally.failed.entry(reason).or_default() += 1
                        }
                        Outcome::Unaccounted(what) => tally.unaccounted.push((uid.clone(), what)),
                    }
                    match stopped {
                        Ok(Stopped::Stopped(retries)) => tally.stop_retries += retries,
                        Ok(Stopped::NotFound(retries)) => {
                            tally.stop_retries += retries;
                            tally.stop_not_found += 1;
                        }
                        Err(why) => tally.stop_gave_up.push((uid, why)),
                    }
                    let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
                    if checkpoints.contains(&done) {
                        tally.rss.push((done, rss_mib()));
                    }
                    done
                };
                if done == n / 2 {
                    // The runtime restarts: its server stops, its socket
                    // goes, and it serves again on the same socket.
                    *restarted_at.lock().unwrap() = Some(began.elapsed());
                    let (token, task) = serving.lock().unwrap().take().unwrap();
                    token.cancel();
                    let _ = task.await;
                    let _ = std::fs::remove_file(sim_sock);
                    tokio::time::sleep(RESTART_GAP).await;
                    *serving.lock().unwrap() = Some(serve_sim(sim, sim_sock, shutdown));
                }
            }
        })
        .await;
    let wall = began.elapsed();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    chaos_done.cancel();
    let (faulted, windows) = chaos_task.await.unwrap();

    // Supervision ends with StopPod; give any stray task a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sandboxes, containers) = (sim.sandbox_count(), sim.container_count());
    let duplicated = sim.duplicated_pods();
    let cri_calls: u64 = METHODS.iter().map(|m| sim.calls(m)).sum();
    let left: Vec<String> = cri
        .list_pod_sandboxes(Default::default())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let meta = s.metadata.unwrap_or_default();
            format!("{} attempt {} state {}", meta.uid, meta.attempt, s.state)
        })
        .collect();

    let mut tally = tally.lock().unwrap();
    tally.latencies.sort();
    let failed: usize = tally.failed.values().sum();
    let lat = &tally.latencies;
    println!();
    println!(
        "soak: {n} pods (1 container each) against the simulated runtime, concurrency {CONCURRENCY}, \
         each stopped when its start ended; sim + podstart + client in one process"
    );
    println!(
        "faults: {windows} fault windows over {} CRI methods, ≈{faulted:.0} faulted calls of {cri_calls} \
         ({:.2}%); runtime restart at {:.1} s ({} s away)",
        METHODS.len(),
        100.0 * faulted / cri_calls.max(1) as f64,
        restarted_at
            .lock()
            .unwrap()
            .unwrap_or_default()
            .as_secs_f64(),
        RESTART_GAP.as_secs_f64()
    );
    println!(
        "load average before: {}  after: {}",
        load_before.trim(),
        load_after.trim()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| StartPods | {n} |");
    println!("| started (PodStarted) | {} |", tally.started);
    println!("| failed with a terminal event | {failed} |");
    for (reason, count) in &tally.failed {
        println!("| … PodFailed reason `{reason}` | {count} |");
    }
    println!("| unaccounted | {} |", tally.unaccounted.len());
    println!(
        "| pods with two live sandboxes / containers at once | {} |",
        duplicated.len()
    );
    println!(
        "| left in the sim after all stops | {sandboxes} sandboxes, {containers} containers |"
    );
    println!(
        "| StopPod NOT_FOUND (no sandbox) / retried / given up after {STOP_ATTEMPTS} | {} / {} / {} |",
        tally.stop_not_found,
        tally.stop_retries,
        tally.stop_gave_up.len()
    );
    for (at, mib) in &tally.rss {
        println!("| RSS at {at} pods | {mib:.0} MiB |");
    }
    println!(
        "| StartPod p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        percentile(lat, 0.5).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "| pods/s (start + stop, wall {:.1} s) | {:.0} |",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64()
    );
    for (uid, what) in tally.unaccounted.iter().take(10) {
        println!("unaccounted: {uid}: {what}");
    }
    for (uid, why) in tally.stop_gave_up.iter().take(10) {
        println!("StopPod gave up: {uid}: {why}");
    }
    for sandbox in left.iter().take(10) {
        println!("left in the sim: sandbox of {sandbox}");
    }
    for uid in duplicated.iter().take(10) {
        println!("duplicated: {uid}");
    }
    shutdown.cancel();
}
