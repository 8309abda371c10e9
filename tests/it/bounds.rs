//! No caller can hold up the node or grow its memory: a caller that does
//! not read its stream, WatchEvents streams opened and closed, requests to
//! unknown methods, oversized requests and input, grace periods at the
//! top of their range, and more starts than the node takes at once. The
//! in-process tests use the harness; the memory and metrics tests run
//! `podstart serve --runtime-endpoint sim` as a process.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    EnvVar, GetPodRequest, PodRef, StartEvent, StopPodRequest, WatchEventsRequest,
    pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::start::EventSink;
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

use crate::common::{Harness, collect, container, exiting, pod, request, terminal};
use crate::net::{free_port, http_get};
use crate::process::{Proc, podstart_bin, wait_for};

/// A channel to `socket` whose streams grant the server no flow-control
/// window: it can send headers, never a message.
async fn no_window_channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    tonic::transport::Endpoint::from_static("http://[::1]:50051")
        .initial_stream_window_size(0)
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap()
}

/// Waits for the terminal event of pod `uid` on the node-wide feed.
async fn terminal_on_bus(
    feed: &mut tokio::sync::broadcast::Receiver<StartEvent>,
    uid: &str,
    within: Duration,
) -> Option<StartEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Err(_) => return None,
            Ok(Ok(e)) if e.pod_uid == uid && e.is_terminal() => return Some(e),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_grants_no_window_does_not_hold_up_the_start_or_stop_pod() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    // Three events per container: more than a stream buffers.
    let containers = (0..60).map(|i| container(&format!("c{i}"))).collect();
    let mut stuck_client = PodStarterClient::new(no_window_channel(&h.api).await);
    let stuck = stuck_client
        .start_pod(request(pod("no-window", "uid-no-window", containers)))
        .await
        .unwrap();

    // The start runs to its end though its caller reads nothing.
    let done = terminal_on_bus(&mut feed, "uid-no-window", Duration::from_secs(30))
        .await
        .expect("the start ends while its caller reads nothing");
    assert!(
        matches!(done.payload, Some(Payload::PodStarted(_))),
        "{done:?}"
    );
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains("podstart_events_dropped_total{reason=\"disconnected\"}"),
        "{metrics}"
    );

    // StopPod of that pod is not held up either.
    let stopped = tokio::time::timeout(Duration::from_secs(30), h.stop("uid-no-window"))
        .await
        .expect("StopPod ends")
        .unwrap();
    assert!(matches!(terminal(&stopped), Payload::PodStopped(_)));
    drop(stuck);
}

#[tokio::test]
async fn watch_events_tasks_end_with_their_streams() {
    let h = Harness::new().await;
    let before = h.starter.bus().receiver_count();
    for _ in 0..100 {
        let stream = h
            .client
            .clone()
            .watch_events(WatchEventsRequest::default())
            .await
            .unwrap();
        drop(stream);
    }
    let bus = h.starter.bus();
    wait_for(
        || bus.receiver_count() <= before,
        "every WatchEvents task to end",
        Duration::from_secs(10),
    )
    .await;
    // A stream still open keeps its feed.
    let open = h
        .client
        .clone()
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap();
    wait_for(
        || bus.receiver_count() == before + 1,
        "the open stream's feed",
        Duration::from_secs(10),
    )
    .await;
    drop(open);
}

fn stop_request(uid: &str, grace: i64) -> StopPodRequest {
    StopPodRequest {
        pod: Some(PodRef {
            uid: uid.to_string(),
            ..Default::default()
        }),
        grace_period_seconds: Some(grace),
    }
}

async fn assert_gone(h: &Harness, uid: &str) {
    let err = h
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: uid.to_string(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn the_largest_grace_period_stops_the_pod_without_a_panic() {
    let h = Harness::new().await;

    // The flow itself, whatever the API lets through.
    let mut spec = pod("grace-flow", "uid-grace-flow", vec![container("app")]);
    spec.termination_grace_period_seconds = Some(i64::MAX);
    let meta = spec.metadata.clone().unwrap();
    // Validation refuses such a grace at the API; the flow must not care.
    let (sink, started) = EventSink::for_caller(&meta, h.starter.bus(), 64, h.metrics.clone());
    h.starter.start_pod(request(spec), sink, None).await;
    let started: Vec<_> = started.collect().await;
    assert!(
        matches!(
            started
                .last()
                .and_then(|e| e.as_ref().ok())
                .and_then(|e| e.payload.as_ref()),
            Some(Payload::PodStarted(_))
        ),
        "{started:?}"
    );
    let (sink, stream) = EventSink::for_caller(&meta, h.starter.bus(), 64, h.metrics.clone());
    h.starter.stop_pod(meta, Some(i64::MAX), sink).await;
    let events: Vec<_> = stream.collect().await;
    let events: Vec<StartEvent> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
    assert!(
        matches!(
            events.last().and_then(|e| e.payload.as_ref()),
            Some(Payload::PodStopped(_))
        ),
        "{events:?}"
    );
    assert_gone(&h, "uid-grace-flow").await;

    // Through the API: stopped, or refused before anything happens;
    // never a stream that ends without its terminal event.
    h.start(request(pod(
        "grace-api",
        "uid-grace-api",
        vec![container("app")],
    )))
    .await
    .unwrap();
    match h
        .client
        .clone()
        .stop_pod(stop_request("uid-grace-api", i64::MAX))
        .await
    {
        Ok(stream) => {
            let events = collect(stream.into_inner()).await;
            assert!(matches!(terminal(&events), Payload::PodStopped(_)));
            assert_gone(&h, "uid-grace-api").await;
        }
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let events = h.stop("uid-grace-api").await.unwrap();
            assert!(matches!(terminal(&events), Payload::PodStopped(_)));
        }
    }
}

#[tokio::test]
async fn starts_past_the_bound_are_refused_before_any_runtime_call() {
    let h = Harness::with(|t| t.max_concurrent_starts = 2).await;
    let slow = |name: &str| {
        let mut p = pod(name, &format!("uid-{name}"), vec![container("app")]);
        p.init_containers = vec![exiting("init", 0, 1500)];
        request(p)
    };
    let mut running = Vec::new();
    for name in ["slow-a", "slow-b"] {
        running.push(h.client.clone().start_pod(slow(name)).await.unwrap());
    }
    let sandboxes = h.sim.calls("RunPodSandbox");
    let refused = h
        .client
        .clone()
        .start_pod(slow("slow-c"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--max-concurrent-starts"),
        "{refused:?}"
    );
    // The two admitted starts may still be on their way to the runtime.
    for stream in running {
        let events = collect(stream.into_inner()).await;
        assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    }
    assert!(sandboxes <= 2);
    assert_eq!(
        h.sim.calls("RunPodSandbox"),
        2,
        "none for the refused start"
    );
    // Their places are free again.
    let events = h.start(slow("slow-c")).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
}

#[tokio::test]
async fn oversized_requests_and_echoed_input_are_bounded() {
    let h = Harness::new().await;
    let mut spec = pod("huge", "uid-huge", vec![container("app")]);
    spec.metadata
        .as_mut()
        .unwrap()
        .annotations
        .insert("big".into(), "x".repeat(5 * 1024 * 1024));
    let err = h.start(request(spec)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(h.sim.calls("RunPodSandbox"), 0);

    // A 3 MB uid is not repeated whole, whatever the code.
    let uid = "u".repeat(3 * 1024 * 1024);
    let err = h
        .client
        .clone()
        .stop_pod(stop_request(&uid, 0))
        .await
        .unwrap_err();
    assert!(err.message().len() <= 1100, "{} bytes", err.message().len());
}

// ---------------------------------------------------------------- process

struct Serve {
    child: Proc,
    socket: PathBuf,
    metrics: String,
    _dir: tempfile::TempDir,
}

async fn serve() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podstart.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = Command::new(podstart_bin())
        .args(["serve", "--runtime-endpoint", "sim"])
        .arg(format!("--metrics-listen={metrics}"))
        .arg(format!("--listen=unix://{}", socket.display()))
        .arg("--pod-log-root")
        .arg(dir.path().join("pods"))
        .arg("--pod-state-root")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Proc(child);
    wait_for(
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the API socket",
        Duration::from_secs(20),
    )
    .await;
    let m = metrics.clone();
    wait_for(
        || http_get(&m, "/metrics").is_some(),
        "the metrics port",
        Duration::from_secs(20),
    )
    .await;
    Serve {
        child,
        socket,
        metrics,
        _dir: dir,
    }
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// A `/proc/<pid>/status` figure given in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).expect(field);
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Opens a WatchEvents stream on a connection of its own, then closes
/// both.
async fn watch_once(socket: &Path) {
    let channel = podstart::endpoint::connect(&Address::Unix(socket.to_path_buf()), Peer::Podstart)
        .await
        .unwrap();
    let stream = PodStarterClient::new(channel)
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap();
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_opened_and_closed_leave_memory_where_it_was() {
    let s = serve().await;
    let pid = s.child.0.id();
    // Warm up: the allocator's and runtime's first growth is not a leak.
    for _ in 0..50 {
        watch_once(&s.socket).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid);
    for _ in 0..500 {
        watch_once(&s.socket).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss(pid);
    println!(
        "RSS before {} KiB, after 500 WatchEvents {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 10 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expansion_bomb_is_refused_without_spending_memory() {
    let s = serve().await;
    let pid = s.child.0.id();
    let channel = podstart::endpoint::connect(&Address::Unix(s.socket.clone()), Peer::Podstart)
        .await
        .unwrap();
    let mut client = PodStarterClient::new(channel);
    // A = 1 KiB, B = $(A) x 1024, C = $(B) x 200: a 6 KB request that
    // would expand to about 210 MB.
    let mut bomb = container("bomb");
    bomb.env = vec![
        EnvVar {
            name: "A".into(),
            value: "x".repeat(1024),
            ..Default::default()
        },
        EnvVar {
            name: "B".into(),
            value: "$(A)".repeat(1024),
            ..Default::default()
        },
        EnvVar {
            name: "C".into(),
            value: "$(B)".repeat(200),
            ..Default::default()
        },
    ];
    let before = peak_rss(pid);
    for round in 0..5 {
        let uid = format!("uid-bomb-{round}");
        let err = client
            .start_pod(request(pod("bomb", &uid, vec![bomb.clone()])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("env[1].value"), "{err:?}");
    }
    let after = peak_rss(pid);
    println!(
        "peak RSS before {} KiB, after 5 expansion bombs {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 50 * 1024 * 1024,
        "peak RSS grew from {before} to {after} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_leave_metrics_small() {
    let s = serve().await;
    let (_, before) = http_get(&s.metrics, "/metrics").unwrap();
    let channel = podstart::endpoint::connect(&Address::Unix(s.socket.clone()), Peer::Podstart)
        .await
        .unwrap();
    let began = Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|c| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                for i in 0..1250 {
                    grpc.ready().await.unwrap();
                    let path = format!("/made.up.Service{c}x{i}/Method{i}")
                        .parse()
                        .unwrap();
                    let err = grpc
                        .unary(
                            tonic::Request::new(()),
                            path,
                            tonic_prost::ProstCodec::<(), ()>::default(),
                        )
                        .await
                        .unwrap_err();
                    assert_eq!(err.code(), Code::Unimplemented);
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    let (_, after) = http_get(&s.metrics, "/metrics").unwrap();
    println!(
        "/metrics {} bytes before, {} bytes after 10,000 unknown methods ({:?})",
        before.len(),
        after.len(),
        began.elapsed()
    );
    assert!(after.len() < 100 * 1024, "{} bytes", after.len());
    assert!(
        after.contains(
            "podstart_grpc_server_handled_total{grpc_code=\"Unimplemented\",grpc_method=\"unknown\",grpc_service=\"unknown\"} 10000"
        ),
        "{after}"
    );
}
