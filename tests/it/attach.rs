//! A StartPod's caller may leave, and others may join: a start goes on to
//! its end whoever listens; a StartPod identical to a start in flight
//! attaches to it (the events so far, then the rest, ending with the same
//! terminal event — one sandbox, one set of containers); a different
//! request of the pod in flight is refused with ABORTED; a StopPod ends
//! every attached stream with the same terminal event.
use std::time::Duration;

use podstart::proto::v1::{
    ContainerState, GetPodRequest, PodRef, SandboxState, StartEvent, StartPodRequest,
    WatchEventsRequest, start_event::Payload,
};
use podstart::sim::Fault;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::common::{Harness, collect, container, exiting, pod, reasons, request, terminal};

/// A pod whose init container runs for `init_ms` before its two app
/// containers start.
fn slow_pod(uid: &str, init_ms: u64) -> StartPodRequest {
    let mut p = pod(uid, uid, vec![container("app"), container("web")]);
    p.init_containers = vec![exiting("init", 0, init_ms)];
    request(p)
}

/// Reads `stream` until an event with `reason` for `who` (a container, or
/// "pod"), returning what it read.
async fn read_until(
    stream: &mut tonic::Streaming<StartEvent>,
    who: &str,
    reason: &str,
) -> Vec<StartEvent> {
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the event comes")
            .expect("the stream goes on")
            .expect("stream item");
        let name = if event.container_name.is_empty() {
            "pod"
        } else {
            event.container_name.as_str()
        };
        let found = name == who && event.reason == reason;
        read.push(event);
        if found {
            return read;
        }
    }
}

fn attached(h: &Harness) -> String {
    h.metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("podstart_start_attached_total "))
        .expect("the attach counter is exported")
        .to_string()
}

#[tokio::test]
async fn fifty_identical_starts_make_one_pod_and_fifty_equal_streams() {
    let h = Harness::new().await;
    // The start stays in RunPodSandbox while the 50 requests arrive.
    h.sim.faults().set(
        "RunPodSandbox",
        Fault {
            latency: Duration::from_millis(1500),
            ..Default::default()
        },
    );
    let req = request(pod(
        "fifty",
        "uid-fifty",
        vec![container("app"), container("web")],
    ));
    let starts = (0..50).map(|_| {
        let client = h.client.clone();
        let req = req.clone();
        tokio::spawn(async move {
            let mut client = client;
            collect(client.start_pod(req).await.unwrap().into_inner()).await
        })
    });
    let streams: Vec<Vec<StartEvent>> = futures::future::try_join_all(starts).await.unwrap();

    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(h.sim.calls("CreateContainer"), 2);
    assert_eq!(h.sim.calls("StartContainer"), 2);
    assert_eq!(h.sim.sandbox_count(), 1);
    assert_eq!(h.sim.container_count(), 2);
    let Payload::PodStarted(done) = terminal(&streams[0]) else {
        panic!("PodStarted: {:?}", reasons(&streams[0]));
    };
    assert!(!done.already_running, "started once, by this start");
    assert!(!done.sandbox_id.is_empty());
    // Every stream is the same: the events so far on attaching (all of
    // them, well within the record), the rest live, and the one terminal
    // event — the same event, time and all.
    for events in &streams {
        assert_eq!(events, &streams[0]);
    }
    assert_eq!(attached(&h), "podstart_start_attached_total 49");
}

#[tokio::test]
async fn a_caller_that_leaves_mid_start_does_not_stop_it() {
    let h = Harness::new().await;
    let mut feed = h
        .client
        .clone()
        .watch_events(WatchEventsRequest {
            pod_uid: "uid-leaver".into(),
            namespace: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = h
        .client
        .clone()
        .start_pod(slow_pod("uid-leaver", 800))
        .await
        .unwrap()
        .into_inner();
    read_until(&mut stream, "init", "Started").await;
    drop(stream);

    // The feed sees the start through to PodStarted.
    let seen = read_until(&mut feed, "pod", "PodStarted").await;
    assert!(
        seen.iter()
            .any(|e| e.container_name == "web" && e.reason == "Started"),
        "{:?}",
        reasons(&seen)
    );
    let pod = h
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: "uid-leaver".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.state(), SandboxState::Ready);
    let running: Vec<_> = pod
        .containers
        .iter()
        .filter(|c| c.state() == ContainerState::Running)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(running.len(), 2, "{:?}", pod.containers);
    assert!(running.contains(&"app") && running.contains(&"web"));
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
}

#[tokio::test]
async fn a_caller_attaching_mid_start_gets_the_events_so_far_and_the_rest() {
    // Attaching takes no start place: one is enough for the start and
    // every caller attached to it.
    let h = Harness::with(|t| t.max_concurrent_starts = 1).await;
    let req = slow_pod("uid-late", 1000);
    let mut first = h
        .client
        .clone()
        .start_pod(req.clone())
        .await
        .unwrap()
        .into_inner();
    let before = read_until(&mut first, "init", "Started").await;

    let second = h.client.clone().start_pod(req.clone()).await.unwrap();
    let third = h.client.clone().start_pod(req).await.unwrap();
    let mut first_events = before;
    first_events.extend(collect(first).await);
    let second = collect(second.into_inner()).await;
    let third = collect(third.into_inner()).await;

    assert!(matches!(terminal(&first_events), Payload::PodStarted(_)));
    // The attachers got what the first caller got: the events before they
    // came (from the record), the rest as they happened.
    assert_eq!(second, first_events);
    assert_eq!(third, first_events);
    assert_eq!(second[0].reason, "SandboxCreated");
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(h.sim.calls("CreateContainer"), 3);
    assert_eq!(attached(&h), "podstart_start_attached_total 2");

    // Once it has ended, the same request is a new start of the pod.
    let again = h.start(slow_pod("uid-late", 1000)).await.unwrap();
    let Payload::PodStarted(done) = terminal(&again) else {
        panic!("{:?}", reasons(&again));
    };
    assert!(done.already_running);
    assert_eq!(attached(&h), "podstart_start_attached_total 2");
}

#[tokio::test]
async fn a_different_request_of_a_pod_in_flight_is_refused() {
    let h = Harness::new().await;
    let mut first = h
        .client
        .clone()
        .start_pod(slow_pod("uid-differs", 800))
        .await
        .unwrap()
        .into_inner();
    read_until(&mut first, "init", "Started").await;

    let mut other = slow_pod("uid-differs", 800);
    other.pod.as_mut().unwrap().containers[1].command = vec!["sleep".into(), "60".into()];
    let refused = h.client.clone().start_pod(other.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "a different start of pod default/uid-differs (uid uid-differs) is in flight; send \
         the same request to attach to it, or retry after it ends"
    );
    let rest = collect(first).await;
    assert!(matches!(terminal(&rest), Payload::PodStarted(_)));
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(
        h.sim.calls("CreateContainer"),
        3,
        "nothing made for the refused request"
    );
    assert_eq!(attached(&h), "podstart_start_attached_total 0");

    // After that start, the other request is a start of its own.
    let events = h.start(other).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:?}",
        reasons(&events)
    );
}

#[tokio::test]
async fn a_stop_ends_every_attached_stream_with_the_same_terminal_event() {
    let h = Harness::new().await;
    let req = slow_pod("uid-stopped", 30_000);
    let mut first = h
        .client
        .clone()
        .start_pod(req.clone())
        .await
        .unwrap()
        .into_inner();
    let before = read_until(&mut first, "init", "Started").await;
    let others = [
        h.client.clone().start_pod(req.clone()).await.unwrap(),
        h.client.clone().start_pod(req).await.unwrap(),
    ];

    let stopped = h.stop("uid-stopped").await.unwrap();
    assert!(matches!(terminal(&stopped), Payload::PodStopped(_)));

    let mut first_events = before;
    first_events.extend(collect(first).await);
    let Payload::PodFailed(failed) = terminal(&first_events) else {
        panic!("{:?}", reasons(&first_events));
    };
    assert_eq!(Code::from(failed.code), Code::Cancelled, "{failed:?}");
    for other in others {
        let events = collect(other.into_inner()).await;
        assert_eq!(events.last(), first_events.last());
    }
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(h.sim.sandbox_count(), 0);
}
