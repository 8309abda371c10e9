//! StartPod throughput on the simulated runtime, with and without many live
//! pods, against what the sim itself sustains for the same load.
//!
//!   cargo bench --bench throughput
//!   PODSTART_BENCH_PODS=4000 PODSTART_BENCH_LIVE_PODS=10000 cargo bench --bench throughput
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench throughput    # debug build, tiny counts
//!
//! Two processes: `podstart sim-runtime` and `podstart serve` against it
//! (with `--max-concurrent-starts 1024`, so that concurrency 256 is not
//! refused by the default limit of 128; every other flag at its default,
//! e.g. `--runtime-max-concurrency 64`; more flags through
//! `PODSTART_BENCH_SERVE_ARGS`, split on spaces). A tokio load generator in
//! this process keeps `c` requests in flight (c = 1, 16, 64, 256;
//! `PODSTART_BENCH_CONCURRENCY=1,16`), over `PODSTART_BENCH_CHANNELS` HTTP/2
//! connections (default 4), for `PODSTART_BENCH_PODS` pods per step
//! (default 3000) or `PODSTART_BENCH_STEP_SECONDS` (default 20), whichever
//! ends first. Per concurrency, two steps in the same run: (direct) the
//! minimal CRI sequence a hand-written client makes (RunPodSandbox +
//! CreateContainer + StartContainer) straight to the sim, which is what the
//! sim sustains; (podstart) StartPod of a one-container pod until
//! PodStarted. Then the same again with `PODSTART_BENCH_LIVE_PODS` (default
//! 5000) pods started beforehand through podstart at concurrency 64 and
//! kept running. Pods of a step are removed after it, untimed (StopPod, or
//! StopPodSandbox + RemovePodSandbox). Prints pods/s, p50/p99 and the CPU%
//! (of one core) of podstart, of the sim and of the load generator over
//! each step. Writes
//! target/bench/throughput-c<N>.csv (ms; series direct, podstart,
//! direct-live, podstart-live). Measures, asserts nothing.
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use podstart::proto::v1::pod_starter_client::PodStarterClient;
use tokio::task::JoinSet;
use tonic::transport::Channel;

#[path = "support/sim_node.rs"]
mod sim_node;

use sim_node::*;

/// Concurrency of setup and teardown (live pods, removals).
const SETUP_CONCURRENCY: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Direct,
    Podstart,
}

/// Load-generator connections: podstart's API or the sim's CRI.
#[derive(Clone)]
struct Clients {
    api: Vec<PodStarterClient<Channel>>,
    direct: Vec<Direct>,
}

struct Step {
    samples: Vec<Duration>,
    wall: Duration,
    /// (podstart, sim, this load generator): CPU seconds and % of one core
    /// over the step.
    cpu: Vec<(f64, f64)>,
}

/// Keeps `c` starts in flight until `pods` are done or `limit` passed.
/// Returns the step and what to remove afterwards (indices, sandbox ids).
async fn step(
    via: Via,
    clients: &Clients,
    ns: &str,
    c: usize,
    pods: usize,
    limit: Duration,
    pids: [u32; 3],
) -> (Step, Vec<(usize, String)>) {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + limit;
    let meter = CpuMeter::start(&pids);
    let t = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..c {
        let (next, ns) = (next.clone(), ns.to_owned());
        let api = clients.api[w % clients.api.len()].clone();
        let direct = clients.direct[w % clients.direct.len()].clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pods || Instant::now() >= deadline {
                    return out;
                }
                out.push(match via {
                    Via::Direct => {
                        let (took, sb) = direct.start(&ns, i).await;
                        (took, i, sb)
                    }
                    Via::Podstart => (start_pod(&api, &ns, i).await, i, String::new()),
                });
            }
        });
    }
    let mut done = Vec::new();
    while let Some(r) = workers.join_next().await {
        done.extend(r.expect("load worker"));
    }
    let wall = t.elapsed();
    let cpu = meter.read();
    let samples = done.iter().map(|(d, _, _)| *d).collect();
    let remove = done.into_iter().map(|(_, i, sb)| (i, sb)).collect();
    (Step { samples, wall, cpu }, remove)
}

/// Removes pods at SETUP_CONCURRENCY, untimed.
async fn remove(via: Via, clients: &Clients, ns: &str, pods: Vec<(usize, String)>) {
    let queue = Arc::new(std::sync::Mutex::new(pods));
    let mut workers = JoinSet::new();
    for w in 0..SETUP_CONCURRENCY {
        let (queue, ns) = (queue.clone(), ns.to_owned());
        let api = clients.api[w % clients.api.len()].clone();
        let direct = clients.direct[w % clients.direct.len()].clone();
        workers.spawn(async move {
            loop {
                let Some((i, sb)) = queue.lock().unwrap().pop() else {
                    return;
                };
                match via {
                    Via::Direct => direct.remove(&sb).await,
                    Via::Podstart => stop_pod(&api, &ns, i).await,
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.expect("removal worker");
    }
}

struct Row {
    c: usize,
    live: usize,
    direct: Step,
    podstart: Step,
}

fn rate(s: &Step) -> f64 {
    s.samples.len() as f64 / s.wall.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let pods = env_usize("PODS", 3000, 20);
    let live = env_usize("LIVE_PODS", 5000, 100);
    let channels = env_usize("CHANNELS", 4, 2).max(1);
    let limit = Duration::from_secs(env_usize("STEP_SECONDS", 20, 20) as u64);
    let levels: Vec<usize> = std::env::var("PODSTART_BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if smoke() {
                vec![1, 16]
            } else {
                vec![1, 16, 64, 256]
            }
        });
    let mut serve_args = vec!["--max-concurrent-starts".to_owned(), "1024".to_owned()];
    if let Ok(extra) = std::env::var("PODSTART_BENCH_SERVE_ARGS") {
        serve_args.extend(extra.split_whitespace().map(str::to_owned));
    }
    print_machine("throughput");
    let dir = tempfile::tempdir().unwrap();
    print_roots(dir.path());
    let (sim, runtime) = spawn_sim(dir.path()).await;
    let (serve_proc, serve) = spawn_serve(dir.path(), &runtime, &serve_args).await;
    let clients = Clients {
        api: (0..channels).map(|_| api_client(&serve)).collect(),
        direct: (0..channels).map(|_| Direct::new(&runtime)).collect(),
    };
    let pids = [serve_proc.pid(), sim.pid(), std::process::id()];

    // Warm-up of both paths, untimed.
    for via in [Via::Direct, Via::Podstart] {
        let (_, rm) = step(via, &clients, "warm", 16, 64, limit, pids).await;
        remove(via, &clients, "warm", rm).await;
    }

    let mut rows = Vec::new();
    let mut live_setup = None;
    for live_pods in [0, live] {
        if live_pods > 0 {
            let t = Instant::now();
            let (s, _) = step(
                Via::Podstart,
                &clients,
                "live",
                SETUP_CONCURRENCY,
                live_pods,
                Duration::from_secs(3600),
                pids,
            )
            .await;
            live_setup = Some((
                s.samples.len(),
                t.elapsed(),
                rss_mib(pids[0]),
                rss_mib(pids[1]),
            ));
        }
        for &c in &levels {
            let tag = if live_pods > 0 { "-live" } else { "" };
            let mut pair = Vec::new();
            for via in [Via::Direct, Via::Podstart] {
                let ns = format!(
                    "tp-{}{tag}-c{c}",
                    if via == Via::Direct { "d" } else { "p" }
                );
                let (s, rm) = step(via, &clients, &ns, c, pods, limit, pids).await;
                remove(via, &clients, &ns, rm).await;
                pair.push(s);
            }
            let podstart = pair.pop().unwrap();
            let direct = pair.pop().unwrap();
            rows.push(Row {
                c,
                live: live_pods,
                direct,
                podstart,
            });
        }
    }
    // The live pods go too.
    let t = Instant::now();
    let live_rm: Vec<(usize, String)> = (0..live).map(|i| (i, String::new())).collect();
    remove(Via::Podstart, &clients, "live", live_rm).await;
    let live_teardown = t.elapsed();
    let left: usize = clients.direct[0].sandboxes().await.values().sum();

    for &c in &levels {
        let mut series: Vec<(String, Vec<Duration>)> = Vec::new();
        for r in rows.iter().filter(|r| r.c == c) {
            let tag = if r.live > 0 { "-live" } else { "" };
            series.push((format!("direct{tag}"), r.direct.samples.clone()));
            series.push((format!("podstart{tag}"), r.podstart.samples.clone()));
        }
        let refs: Vec<(&str, &[Duration])> = series
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        write_csv(&format!("throughput-c{c}.csv"), &refs, ms);
    }

    println!();
    println!(
        "scenario (d): StartPod throughput on the sim (separate processes; 1 container, image present; {channels} HTTP/2 connections; up to {pods} pods or {}s per step; podstart with {})",
        limit.as_secs(),
        serve_args.join(" ")
    );
    println!();
    println!(
        "| c | live pods | direct CRI pods/s | direct p50 / p99 ms | podstart pods/s | podstart p50 / p99 ms | podstart / direct (pods/s) | podstart CPU% | sim CPU% (podstart step) | load generator CPU% (podstart step) | sim CPU% (direct step) | load generator CPU% (direct step) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &mut rows {
        r.direct.samples.sort();
        r.podstart.samples.sort();
        let (d, p) = (&r.direct, &r.podstart);
        println!(
            "| {} | {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            r.c,
            r.live,
            rate(d),
            ms(median(&d.samples)),
            ms(percentile(&d.samples, 0.99)),
            rate(p),
            ms(median(&p.samples)),
            ms(percentile(&p.samples, 0.99)),
            rate(p) / rate(d),
            p.cpu[0].1,
            p.cpu[1].1,
            p.cpu[2].1,
            d.cpu[1].1,
            d.cpu[2].1,
        );
    }
    println!();
    if let Some((n, took, rss_p, rss_s)) = live_setup {
        println!(
            "live pods: {n} started through podstart at concurrency {SETUP_CONCURRENCY} in {:.1} s (RSS then: podstart {rss_p:.0} MiB, sim {rss_s:.0} MiB); stopped in {:.1} s; sandboxes left in the sim: {left}",
            took.as_secs_f64(),
            live_teardown.as_secs_f64()
        );
    }
    println!(
        "goal: ≥ 2000 StartPod/s, podstart never the limit (CPU% is of one core; the machine has `nproc` cores shared by both processes and this load generator)"
    );
    drop(serve_proc);
    drop(sim);
}
