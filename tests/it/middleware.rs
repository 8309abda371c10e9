//! The CRI middleware against the simulated runtime with injected faults:
//! deadlines, retries, adoption after uncertain creates, a runtime that
//! dies and returns.

use std::time::Duration;

use crate::common::*;
use podstart::cri::{Cri, CriSettings};
use podstart::proto::v1::start_event::Payload;
use podstart::sim::Fault;
use podstart::telemetry::Metrics;
use tonic::Code;

fn short_deadline(s: &mut CriSettings) {
    s.request_timeout = Duration::from_millis(150);
}

#[tokio::test]
async fn a_hung_call_fails_with_deadline_exceeded_naming_the_operation() {
    let h = Harness::with_settings(|_| {}, short_deadline).await;
    h.sim.faults().set(
        "ContainerStatus",
        Fault {
            hang: true,
            ..Default::default()
        },
    );
    let cri = Cri::new(
        &h.runtime,
        &h.runtime,
        {
            let mut s = CriSettings::default();
            short_deadline(&mut s);
            s
        },
        Metrics::new().unwrap(),
    )
    .unwrap();
    let err = cri.container_status("abc").await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(err.to_string().contains("container_status"), "{err}");
}

#[tokio::test]
async fn unavailable_twice_then_ok_is_retried() {
    let h = Harness::new().await;
    h.sim.faults().set(
        "PodSandboxStatus",
        Fault {
            error: Some(Code::Unavailable),
            times: Some(2),
            ..Default::default()
        },
    );
    let events = h
        .start(request(pod(
            "retried",
            "uid-retried",
            vec![container("app")],
        )))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:#?}",
        reasons(&events)
    );
    let text = h.metrics.encode();
    assert!(
        text.contains("podstart_runtime_retries_total{operation_type=\"podsandbox_status\"} 2"),
        "{text}"
    );
    assert!(text.contains(
        "podstart_runtime_operations_errors_total{code=\"Unavailable\",operation_type=\"podsandbox_status\"} 2"
    ));
}

#[tokio::test]
async fn a_create_that_times_out_after_creating_is_adopted_not_duplicated() {
    let h = Harness::with_settings(|_| {}, short_deadline).await;
    h.sim.faults().set(
        "CreateContainer",
        Fault {
            delay_after: Duration::from_millis(600),
            times: None,
            ..Default::default()
        },
    );
    let events = h
        .start(request(pod("adopt", "uid-adopt", vec![container("app")])))
        .await
        .unwrap();
    let Payload::PodStarted(done) = terminal(&events) else {
        panic!("expected PodStarted: {:#?}", reasons(&events));
    };
    assert_eq!(h.sim.calls("CreateContainer"), 1, "never created twice");
    assert_eq!(h.sim.container_count(), 1, "one container, adopted");
    assert_eq!(h.sim.calls("StartContainer"), 1);
    assert_eq!(done.containers.len(), 1);
}

#[tokio::test]
async fn a_sandbox_that_times_out_after_creating_is_adopted() {
    let h =
        Harness::with_settings(|_| {}, |s| s.request_timeout = Duration::from_millis(100)).await;
    // RunPodSandbox's deadline is twice the request timeout: 200 ms.
    h.sim.faults().set(
        "RunPodSandbox",
        Fault {
            delay_after: Duration::from_millis(500),
            ..Default::default()
        },
    );
    let events = h
        .start(request(pod(
            "adoptsb",
            "uid-adoptsb",
            vec![container("app")],
        )))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:#?}",
        reasons(&events)
    );
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(h.sim.sandbox_count(), 1);
}

#[tokio::test]
async fn a_create_that_fails_outright_is_not_retried() {
    let h = Harness::new().await;
    h.sim.faults().set(
        "CreateContainer",
        Fault {
            error: Some(Code::InvalidArgument),
            message: "bad config".into(),
            ..Default::default()
        },
    );
    let events = h
        .start(request(pod(
            "nocreate",
            "uid-nocreate",
            vec![container("app")],
        )))
        .await
        .unwrap();
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.reason, "CreateContainerError");
    assert_eq!(failed.code, Code::InvalidArgument as i32);
    assert!(
        !h.metrics
            .encode()
            .contains("podstart_runtime_retries_total{operation_type=\"create_container\"}")
    );
}

#[tokio::test]
async fn a_runtime_that_dies_and_returns_is_waited_for() {
    // Retries wait a jittered back-off (full jitter: anywhere from 0 to
    // 100, 200, 400 ms): with the default four attempts a loaded machine
    // may spend them all inside the outage. Ten attempts span seconds, so
    // what is tested is that the start waits, not the dice.
    let h = Harness::with_settings(|_| {}, |c| c.retry.max_attempts = 10).await;
    h.runtime_down_for(Duration::from_millis(150)).await;
    let events = h
        .start(request(pod(
            "phoenix",
            "uid-phoenix",
            vec![container("app")],
        )))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:#?}",
        reasons(&events)
    );
    assert!(
        h.metrics
            .encode()
            .contains("podstart_runtime_retries_total")
    );
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_start() {
    let h = Harness::new().await;
    let mut p = pod("late", "uid-late", vec![container("app")]);
    p.init_containers = vec![exiting("slow", 0, 5_000)];
    let mut req = tonic::Request::new(request(p));
    req.set_timeout(Duration::from_millis(300));
    // The client gives up at its deadline; podstart's own record of the
    // start (the node-wide feed) ends with DEADLINE_EXCEEDED.
    let mut watch = h
        .client
        .clone()
        .watch_events(podstart::proto::v1::WatchEventsRequest {
            pod_uid: "uid-late".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let started = std::time::Instant::now();
    let _ = h.client.clone().start_pod(req).await;
    use tokio_stream::StreamExt;
    let terminal = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the start ends")
            .unwrap()
            .unwrap();
        if e.is_terminal() {
            break e;
        }
    };
    let Some(Payload::PodFailed(failed)) = terminal.payload else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.code, Code::DeadlineExceeded as i32);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped at the deadline, not after the init container"
    );
}
