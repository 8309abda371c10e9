//! podstart serve's memory (RSS) idle, with many open WatchEvents streams
//! and with many live pods, and its cold start to ready, on the simulated
//! runtime.
//!
//!   cargo bench --bench memory
//!   PODSTART_BENCH_LIVE_PODS=10000 PODSTART_BENCH_STREAMS=2000 cargo bench --bench memory
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench memory    # debug build, tiny counts
//!
//! Two processes: `podstart sim-runtime` and `podstart serve` against it.
//! Cold start: from spawning `podstart serve` to (a) its metrics port's
//! /readyz answering 200 (the runtime answered its probe) and (b) the gRPC
//! health check of `podstart.v1.PodStarter` on its API socket answering
//! SERVING; median of `PODSTART_BENCH_SPAWNS` spawns (default 7), on an
//! empty node and again with the live pods on it. With pods present,
//! podstart recovers them once the runtime is ready (one PodRecovered
//! event each, in the background: readiness does not wait for it), so the
//! bench also times (c) the last PodRecovered event seen on a WatchEvents
//! stream opened as soon as the API socket exists, with how many were seen
//! (events sent before that stream opened, or dropped for a slow watcher,
//! are not counted). RSS is VmRSS from /proc/<pid>/status, read 1 s after
//! each state settles: idle after start; with `PODSTART_BENCH_STREAMS`
//! (default 1000) WatchEvents streams held open over
//! `PODSTART_BENCH_CHANNELS` connections (default 10, 100 streams each);
//! after those close; with `PODSTART_BENCH_LIVE_PODS` (default 5000) pods of
//! one container started through podstart at concurrency 64; and after a
//! restart that recovered them. The sim's RSS is shown beside it. Writes
//! target/bench/cold-start.csv (ms). Measures, asserts nothing.
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::WatchEventsRequest;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[path = "support/sim_node.rs"]
mod sim_node;

use sim_node::*;

const SETTLE: Duration = Duration::from_secs(1);

/// One cold start: times from spawn to /readyz 200, to health SERVING and
/// to the last PodRecovered event seen (with their count).
struct ColdStart {
    readyz: Duration,
    serving: Duration,
    recovered: Option<(Duration, usize)>,
}

/// Spawns `podstart serve` and times it to ready. The process is returned
/// running.
async fn cold_start(
    dir: &Path,
    runtime: &Address,
    expect_recovered: usize,
) -> (Proc, Serve, ColdStart) {
    let t = Instant::now();
    let (proc, serve) = spawn_serve_nowait(dir, runtime, &[]);
    let port = serve.metrics_port;
    let readyz = tokio::spawn(async move {
        loop {
            let answered = tokio::task::spawn_blocking(move || readyz(port))
                .await
                .unwrap();
            if answered == Some(200) {
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    while !serve.socket.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "podstart did not come up"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The feed first, so that recovery's events are seen from the start.
    let recovered = if expect_recovered > 0 {
        let client = api_client(&serve);
        let mut feed = loop {
            match client
                .clone()
                .watch_events(WatchEventsRequest::default())
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        Some(tokio::spawn(async move {
            let (mut seen, mut last) = (0, Duration::ZERO);
            // Until all are seen, or 5 s pass without one.
            while seen < expect_recovered {
                match tokio::time::timeout(Duration::from_secs(5), feed.next()).await {
                    Ok(Some(Ok(e))) if e.reason == "PodRecovered" => {
                        seen += 1;
                        last = t.elapsed();
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            (last, seen)
        }))
    } else {
        None
    };
    let mut health = HealthClient::new(
        podstart::endpoint::channel(&Address::Unix(serve.socket.clone()), Peer::Podstart).unwrap(),
    );
    let serving = loop {
        let status = health
            .check(HealthCheckRequest {
                service: "podstart.v1.PodStarter".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(ServingStatus::Serving as i32) {
            break t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let readyz = readyz.await.unwrap();
    let recovered = match recovered {
        Some(task) => Some(task.await.unwrap()),
        None => None,
    };
    (
        proc,
        serve,
        ColdStart {
            readyz,
            serving,
            recovered,
        },
    )
}

/// `spawns` cold starts; the last process is left running.
async fn cold_starts(
    dir: &Path,
    runtime: &Address,
    spawns: usize,
    expect_recovered: usize,
) -> (Proc, Serve, Vec<ColdStart>) {
    let mut out = Vec::new();
    loop {
        let (proc, serve, c) = cold_start(dir, runtime, expect_recovered).await;
        out.push(c);
        if out.len() == spawns.max(1) {
            return (proc, serve, out);
        }
        proc.stop();
    }
}

/// Whether `each` starts or stops the live pods.
#[derive(Clone, Copy)]
enum Verb {
    Start,
    Stop,
}

/// Starts or stops live pods `0..pods`, 64 at a time; returns how long it
/// took.
async fn each_live(serve: &Serve, pods: usize, verb: Verb) -> Duration {
    let client = api_client(serve);
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..64 {
        let (client, next) = (client.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pods {
                    return;
                }
                match verb {
                    Verb::Start => {
                        start_pod(&client, "live", i).await;
                    }
                    Verb::Stop => stop_pod(&client, "live", i).await,
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.expect("live pod worker");
    }
    t.elapsed()
}

fn med(v: &[Duration]) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    ms(median(&v))
}

#[tokio::main]
async fn main() {
    let live = env_usize("LIVE_PODS", 5000, 100);
    let streams = env_usize("STREAMS", 1000, 50);
    let channels = env_usize("CHANNELS", 10, 2).max(1);
    let spawns = env_usize("SPAWNS", 7, 2);
    print_machine("memory");
    let dir = tempfile::tempdir().unwrap();
    print_roots(dir.path());
    let (sim, runtime) = spawn_sim(dir.path()).await;
    let mut rss: Vec<(String, f64, f64)> = Vec::new();
    let mut note = |what: String, serve_pid: u32| {
        rss.push((what, rss_mib(serve_pid), rss_mib(sim.pid())));
    };

    // Cold starts on an empty node; the last one stays up.
    let (proc, serve, empty) = cold_starts(dir.path(), &runtime, spawns, 0).await;
    tokio::time::sleep(SETTLE).await;
    note("idle after start (empty node)".into(), proc.pid());

    // Open WatchEvents streams, spread over a few connections.
    let clients: Vec<_> = (0..channels).map(|_| api_client(&serve)).collect();
    let mut open = Vec::with_capacity(streams);
    for k in 0..streams {
        let s = clients[k % channels]
            .clone()
            .watch_events(WatchEventsRequest::default())
            .await
            .expect("WatchEvents")
            .into_inner();
        open.push(s);
    }
    // One pod start and stop, so that every stream carries events.
    start_pod(&clients[0], "fanout", 0).await;
    stop_pod(&clients[0], "fanout", 0).await;
    tokio::time::sleep(SETTLE).await;
    note(
        format!("{streams} open WatchEvents streams ({channels} connections)"),
        proc.pid(),
    );
    let mut first_event = 0;
    for s in &mut open {
        if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            first_event += 1;
        }
    }
    drop(open);
    drop(clients);
    tokio::time::sleep(SETTLE).await;
    note("after those streams closed".into(), proc.pid());

    let took = each_live(&serve, live, Verb::Start).await;
    tokio::time::sleep(SETTLE).await;
    note(format!("{live} live pods (1 container each)"), proc.pid());

    // Restarts with the pods on the node: recovery runs each time.
    proc.stop();
    let (proc, serve, full) = cold_starts(dir.path(), &runtime, spawns, live).await;
    tokio::time::sleep(SETTLE).await;
    note(
        format!("{live} live pods, after a restart that recovered them"),
        proc.pid(),
    );
    each_live(&serve, live, Verb::Stop).await;
    let left: usize = Direct::new(&runtime).sandboxes().await.values().sum();
    proc.stop();

    let series =
        |v: &[ColdStart], f: fn(&ColdStart) -> Duration| v.iter().map(f).collect::<Vec<_>>();
    let (er, es) = (series(&empty, |c| c.readyz), series(&empty, |c| c.serving));
    let (fr, fs) = (series(&full, |c| c.readyz), series(&full, |c| c.serving));
    let frec: Vec<Duration> = full
        .iter()
        .filter_map(|c| c.recovered.map(|r| r.0))
        .collect();
    let seen: Vec<usize> = full
        .iter()
        .filter_map(|c| c.recovered.map(|r| r.1))
        .collect();
    write_csv(
        "cold-start.csv",
        &[
            ("readyz-empty", &er),
            ("serving-empty", &es),
            ("readyz-live", &fr),
            ("serving-live", &fs),
            ("recovered-live", &frec),
        ],
        ms,
    );

    println!();
    println!(
        "scenario (e): memory of `podstart serve` on the sim (separate processes; RSS = VmRSS, 1 s after each state)"
    );
    println!();
    println!("| state | podstart RSS MiB | sim RSS MiB |");
    println!("| --- | --- | --- |");
    for (what, p, s) in &rss {
        println!("| {what} | {p:.1} | {s:.1} |");
    }
    println!();
    println!(
        "streams: {first_event} of {streams} got an event of the pod started while they were open; live pods started at concurrency 64 in {:.1} s; sandboxes left in the sim after the run: {left}",
        took.as_secs_f64()
    );
    println!();
    println!("cold start: median of {spawns} spawns, ms from spawning `podstart serve`");
    println!();
    println!(
        "| node | to /readyz 200 | to gRPC health SERVING | to the last PodRecovered seen (count seen) |"
    );
    println!("| --- | --- | --- | --- |");
    println!("| empty | {:.1} | {:.1} | — |", med(&er), med(&es));
    println!(
        "| {live} live pods | {:.1} | {:.1} | {:.1} ({}) |",
        med(&fr),
        med(&fs),
        med(&frec),
        seen.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "ratio with pods / empty (medians): readyz {:.2}, SERVING {:.2}",
        med(&fr) / med(&er),
        med(&fs) / med(&es)
    );
    drop(sim);
}
