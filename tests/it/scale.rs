//! Thousands of supervised pods on one node: every pod starts, ListPods
//! answers, a crash in one pod is restarted while all the others stay
//! supervised, and the node's runtime holds one container event stream,
//! not one per pod. Figures (start latency, ListPods time, RSS) are printed
//! for BENCHMARKS.md; nothing here asserts a duration.
use std::time::{Duration, Instant};

use futures::StreamExt;
use podstart::proto::v1::{ListPodsRequest, WatchEventsRequest, start_event::Payload};

use crate::common::{Harness, container, exiting, pod, request, terminal};

/// Live pods in the test (`PODSTART_SCALE_PODS` overrides, for measuring).
fn pod_count() -> usize {
    std::env::var("PODSTART_SCALE_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

const CONCURRENCY: usize = 64;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_supervised_pods_share_one_event_stream() {
    let n = pod_count();
    // The watcher's safety-net relist (every 30 s with events) is put out
    // of reach: the idle window below counts every call as a pod's.
    let h = Harness::with(|t| t.pleg.events_relist_period = Duration::from_secs(3600)).await;
    let mut feed = h
        .client
        .clone()
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();

    let began = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let h = &h;
            async move {
                let p = pod(
                    &format!("many-{i}"),
                    &format!("uid-many-{i}"),
                    vec![container("app")],
                );
                let t = Instant::now();
                let events = h.start(request(p)).await.expect("StartPod answers");
                assert!(
                    matches!(terminal(&events), Payload::PodStarted(_)),
                    "pod {i}: {events:?}"
                );
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let wall = began.elapsed();
    latencies.sort();
    let rss_started = rss_mib();

    // Supervised pods at rest cost the runtime nothing: no stream, no poll,
    // no status read per pod (the old shape relisted each pod every 5 s).
    let idle_calls =
        || ["ListContainers", "ContainerStatus", "GetContainerEvents"].map(|op| h.sim.calls(op));
    let before = idle_calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        idle_calls(),
        before,
        "ListContainers, ContainerStatus, GetContainerEvents while {n} pods idle for 3 s"
    );

    // Every pod is supervised (restartPolicy Always); one of them crashes.
    let crash = pod("crasher", "uid-crasher", vec![exiting("crash", 1, 100)]);
    let events = h.start(request(crash)).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let crashed_at = Instant::now();
    let mut restarted = None;
    let mut exits = 0;
    while restarted.is_none() && crashed_at.elapsed() < Duration::from_secs(60) {
        let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(1), feed.next()).await
        else {
            continue;
        };
        if e.pod_uid != "uid-crasher" || e.container_name != "crash" {
            continue;
        }
        match e.reason.as_str() {
            "Error" => exits += 1,
            "Started" if exits > 0 => restarted = Some(crashed_at.elapsed()),
            _ => {}
        }
    }
    let restarted = restarted.expect("the crashed container is restarted");

    let t = Instant::now();
    let listed = h
        .client
        .clone()
        .list_pods(ListPodsRequest::default())
        .await
        .expect("ListPods answers")
        .into_inner();
    let list_took = t.elapsed();
    assert_eq!(listed.pods.len(), n + 1, "every pod is listed");

    // One container event stream for the whole node, however many pods.
    let (open, most) = h.sim.event_streams();
    assert_eq!(most, 1, "the most event streams open at once");
    assert_eq!(open, 1, "the watcher's stream is still open");
    let lists = h.sim.calls("ListContainers");

    println!(
        "scale: {n} pods at concurrency {CONCURRENCY} in {wall:?} ({:.0} pods/s); StartPod p50 {:?} \
         p99 {:?} max {:?}; crashed container restarted {restarted:?} after the pod started; \
         ListPods of {} pods {list_took:?}; RSS {rss_started:.0} MiB (test process: sim + podstart); \
         ListContainers {lists}",
        n as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        listed.pods.len(),
    );
}
