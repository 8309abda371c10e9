//! podstart's own cost per StartPod on the simulated runtime.
//!
//!   cargo bench --bench sim_cost                         # 2000 pods per series
//!   PODSTART_BENCH_PODS=500 PODSTART_BENCH_BLOCK=50 cargo bench --bench sim_cost
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench sim_cost   # 20 pods, debug build
//!
//! Two processes: `podstart sim-runtime` and `podstart serve` against it.
//! In alternating blocks, one pod at a time, one container, image present:
//! (direct) the minimal CRI sequence a hand-written client makes
//! (RunPodSandbox + CreateContainer + StartContainer, minimal configs, on
//! its own connection to the sim), and (podstart) StartPod through podstart
//! until PodStarted. Each pod is removed right after its start, untimed
//! (StopPodSandbox + RemovePodSandbox, or StopPod). Prints median/p90/p99 of
//! each, the added µs per StartPod (difference of medians) and podstart's
//! user+sys CPU time over the measured StartPods per pod (from
//! /proc/<pid>/stat read around each StartPod; StopPods are not counted).
//! Writes target/bench/sim-cost-us.csv. Also prints podstart's CRI calls
//! per StartPod by operation, from its /metrics read around each StartPod.
//! Pod roots live in a temporary directory: `TMPDIR=/dev/shm` puts them on
//! tmpfs (podstart makes and removes directories per pod, whose cost
//! depends on the file system). Measures, asserts nothing.
use std::time::Duration;

#[path = "support/sim_node.rs"]
mod sim_node;

use sim_node::*;

#[tokio::main]
async fn main() {
    let pods = env_usize("PODS", 2000, 20);
    let block = env_usize("BLOCK", 100, 5).max(1);
    print_machine("sim_cost");
    let dir = tempfile::tempdir().unwrap();
    print_roots(dir.path());
    let (sim, runtime) = spawn_sim(dir.path()).await;
    let (serve_proc, serve) = spawn_serve(dir.path(), &runtime, &[]).await;
    let client = api_client(&serve);
    let direct = Direct::new(&runtime);

    // Warm-up of both, untimed.
    for i in 0..block.min(20) {
        let (_, sb) = direct.start("warm-direct", i).await;
        direct.remove(&sb).await;
        start_pod(&client, "warm-podstart", i).await;
        stop_pod(&client, "warm-podstart", i).await;
    }

    let (mut d, mut p) = (Vec::with_capacity(pods), Vec::with_capacity(pods));
    let mut podstart_cpu = 0.0;
    // podstart's CRI calls during the timed StartPods: count, seconds.
    let mut calls: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    let pid = serve_proc.pid();
    let mut i = 0;
    while p.len() < pods {
        let n = block.min(pods - p.len());
        for k in 0..n {
            let (took, sb) = direct.start("direct", i + k).await;
            d.push(took);
            direct.remove(&sb).await;
        }
        // podstart's CPU and CRI calls are read around each StartPod alone,
        // not its StopPod.
        for k in 0..n {
            let calls_before = cri_calls(serve.metrics_port);
            let before = cpu_seconds(pid);
            p.push(start_pod(&client, "podstart", i + k).await);
            podstart_cpu += cpu_seconds(pid) - before;
            for (op, (count, secs)) in cri_calls(serve.metrics_port) {
                let (c0, s0) = calls_before.get(&op).copied().unwrap_or_default();
                let entry = calls.entry(op).or_default();
                entry.0 += count - c0;
                entry.1 += secs - s0;
            }
            stop_pod(&client, "podstart", i + k).await;
        }
        i += n;
    }
    let left = direct.sandboxes().await;
    write_csv("sim-cost-us.csv", &[("direct", &d), ("podstart", &p)], us);
    d.sort();
    p.sort();
    let row = |name: &str, v: &[Duration]| {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            us(median(v)),
            us(percentile(v, 0.9)),
            us(percentile(v, 0.99)),
        );
    };
    println!();
    println!(
        "scenario (c): podstart's cost per StartPod on the sim (separate processes; one pod at a time, 1 container, image present; blocks of {block} alternating)"
    );
    println!();
    println!("| series | pods | p50 µs | p90 µs | p99 µs |");
    println!("| --- | --- | --- | --- | --- |");
    row("direct CRI (Run + Create + Start, minimal configs)", &d);
    row("podstart StartPod (until PodStarted)", &p);
    println!();
    let added = us(median(&p)) - us(median(&d));
    println!("| measure | value | goal |");
    println!("| --- | --- | --- |");
    println!("| added µs per StartPod (p50 podstart − p50 direct) | {added:.1} | < 500 |");
    println!(
        "| ratio of medians (podstart / direct) | {:.2} | |",
        us(median(&p)) / us(median(&d))
    );
    println!(
        "| podstart CPU per StartPod (user+sys over the timed StartPods) | {:.1} µs | |",
        podstart_cpu * 1e6 / p.len() as f64
    );
    println!(
        "| sim CPU total over the run (both series and removals) | {:.3} s | |",
        cpu_seconds(sim.pid())
    );
    let remaining: usize = left.values().sum();
    println!("| sandboxes left in the sim after the run | {remaining} | 0 |");
    println!();
    println!(
        "podstart's CRI calls during the timed StartPods (its /metrics, read around each StartPod; time as podstart's CRI client measures it, stack included)"
    );
    println!();
    println!("| CRI operation | calls per StartPod | mean µs per call | µs per StartPod |");
    println!("| --- | --- | --- | --- |");
    let n = p.len() as f64;
    let (mut total_calls, mut total_us) = (0.0, 0.0);
    for (op, (count, secs)) in calls.iter().filter(|(_, (c, _))| *c > 0.0) {
        total_calls += count / n;
        total_us += secs * 1e6 / n;
        println!(
            "| {op} | {:.2} | {:.1} | {:.1} |",
            count / n,
            secs * 1e6 / count,
            secs * 1e6 / n
        );
    }
    println!("| all | {total_calls:.2} | | {total_us:.1} |");
    drop(serve_proc);
    drop(sim);
}
