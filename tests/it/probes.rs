//! Liveness and readiness probes after the start, against the simulated
//! runtime: exec probes scripted with the sim's `exit-codes` rule, HTTP,
//! TCP and gRPC probes against servers on loopback (a host-network pod's
//! probes without a host go to 127.0.0.1). Events are read from the
//! node-wide feed, readiness from GetPod.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::common::*;
use podstart::proto::v1::{
    ContainerState, ExecAction, GetPodRequest, GrpcAction, Handler, HttpGetAction, ListPodsRequest,
    Pod, PodRef, Probe, StartEvent, TcpSocketAction, handler::Action, start_event::Payload,
};

fn exec(cmd: &[&str]) -> Handler {
    Handler {
        action: Some(Action::Exec(ExecAction {
            command: cmd.iter().map(|s| s.to_string()).collect(),
        })),
    }
}

/// A probe every second, failing after `failure_threshold` failures in a
/// row.
fn probe(handler: Handler, failure_threshold: i32) -> Probe {
    Probe {
        handler: Some(handler),
        period_seconds: 1,
        failure_threshold,
        ..Default::default()
    }
}

/// Waits on the feed for `reason` of container `name` in pod `uid`,
/// collecting the pod's events on the way.
async fn wait_for(
    feed: &mut broadcast::Receiver<StartEvent>,
    seen: &mut Vec<StartEvent>,
    uid: &str,
    name: &str,
    reason: &str,
) -> StartEvent {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), feed.recv()).await {
            Ok(Ok(e)) if e.pod_uid == uid => {
                seen.push(e.clone());
                if e.container_name == name && e.reason == reason {
                    return e;
                }
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            _ => {}
        }
    }
    panic!("no {reason} of {name} in {uid}; saw {:#?}", reasons(seen));
}

async fn get_pod(h: &Harness, uid: &str) -> Pod {
    h.client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: uid.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Each container's newest instance: (name, restart count, state, ready).
fn newest(pod: &Pod) -> Vec<(String, u32, ContainerState, bool)> {
    let mut out: Vec<(String, u32, ContainerState, bool)> = Vec::new();
    for c in &pod.containers {
        let row = (c.name.clone(), c.restart_count, c.state(), c.ready);
        match out.iter_mut().find(|r| r.0 == c.name) {
            Some(r) if r.1 < c.restart_count => *r = row,
            Some(_) => {}
            None => out.push(row),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn readiness_of(e: &StartEvent) -> (bool, bool) {
    match &e.payload {
        Some(Payload::Readiness(r)) => (r.container_ready, r.pod_ready),
        other => panic!("no readiness payload: {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    // Succeeds once, fails once (the container is killed), then succeeds.
    web.liveness_probe = Some(probe(exec(&["check", "exit-codes", "0,1,0"]), 1));
    let events = h
        .start(request(pod("live", "uid-live", vec![web])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));

    let mut seen = Vec::new();
    let unhealthy = wait_for(&mut feed, &mut seen, "uid-live", "web", "Unhealthy").await;
    assert_eq!(
        unhealthy.message,
        "Liveness probe failed: command exited with code 1"
    );
    assert_eq!(unhealthy.r#type(), podstart::proto::v1::EventType::Warning);
    let killing = wait_for(&mut feed, &mut seen, "uid-live", "web", "Killing").await;
    assert_eq!(
        killing.message,
        "Container web failed liveness probe, will be restarted"
    );
    wait_for(&mut feed, &mut seen, "uid-live", "web", "Started").await;
    let pod = get_pod(&h, "uid-live").await;
    let rows = newest(&pod);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, 1, "restarted once: {rows:?}");
    assert_eq!(rows[0].2, ContainerState::Running);
    // Its probe succeeds from now on: no second kill.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(newest(&get_pod(&h, "uid-live").await)[0].1, 1);
    h.stop("uid-live").await.unwrap();
}

#[tokio::test]
async fn readiness_flips_with_the_probe_and_shows_in_get_pod() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    // Ready at the first success, not ready after two failures in a row,
    // ready again.
    web.readiness_probe = Some(probe(exec(&["ready", "exit-codes", "0,1,1,0"]), 2));
    let log = container("log");
    let events = h
        .start(request(pod("ready", "uid-ready", vec![web, log])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    assert!(
        !events.iter().any(|e| e.reason.starts_with("Container")),
        "readiness is on the node-wide feed only"
    );

    let mut seen = Vec::new();
    let ready = wait_for(&mut feed, &mut seen, "uid-ready", "web", "ContainerReady").await;
    assert_eq!(readiness_of(&ready), (true, true));
    assert_eq!(ready.message, "Container web is ready");
    let pod = get_pod(&h, "uid-ready").await;
    assert!(pod.ready);
    let rows = newest(&pod);
    assert_eq!((rows[0].0.as_str(), rows[0].3), ("log", true));
    assert_eq!((rows[1].0.as_str(), rows[1].3), ("web", true));

    let not_ready = wait_for(
        &mut feed,
        &mut seen,
        "uid-ready",
        "web",
        "ContainerNotReady",
    )
    .await;
    assert_eq!(readiness_of(&not_ready), (false, false));
    let failures: Vec<&str> = seen
        .iter()
        .filter(|e| e.reason == "Unhealthy")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        failures,
        [
            "Readiness probe failed: command exited with code 1",
            "Readiness probe failed: command exited with code 1"
        ]
    );
    let pod = get_pod(&h, "uid-ready").await;
    assert!(!pod.ready);
    let listed = h
        .client
        .clone()
        .list_pods(ListPodsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pods;
    let listed = listed.iter().find(|p| p.uid == "uid-ready").unwrap();
    assert!(!listed.ready, "ListPods agrees");
    assert!(!newest(listed)[1].3);
    assert!(!newest(&pod)[1].3, "web is not ready");
    assert!(newest(&pod)[0].3, "log has no probe: ready");

    let again = wait_for(&mut feed, &mut seen, "uid-ready", "web", "ContainerReady").await;
    assert_eq!(readiness_of(&again), (true, true));
    assert!(get_pod(&h, "uid-ready").await.ready);
    let listed = h
        .client
        .clone()
        .list_pods(ListPodsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pods;
    assert!(
        listed.iter().any(|p| p.uid == "uid-ready" && p.ready),
        "ListPods agrees"
    );
    assert_eq!(
        newest(&get_pod(&h, "uid-ready").await)[1].1,
        0,
        "readiness never restarts"
    );
    h.stop("uid-ready").await.unwrap();
}

/// An HTTP server on loopback answering every request with `status`.
async fn http_server(status: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn http_tcp_and_grpc_probes() {
    let h = Harness::privileged().await;
    let mut feed = h.starter.subscribe();
    let http_port = http_server(200).await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let (health, service) = tonic_health::server::health_reporter();
    health
        .set_service_status("db", tonic_health::ServingStatus::Serving)
        .await;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_port = grpc.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
    );

    let mut web = container("web");
    web.readiness_probe = Some(probe(
        Handler {
            action: Some(Action::HttpGet(HttpGetAction {
                host: "127.0.0.1".into(),
                port: http_port.to_string(),
                path: "/ready".into(),
                ..Default::default()
            })),
        },
        1,
    ));
    let mut cache = container("cache");
    cache.readiness_probe = Some(probe(
        Handler {
            action: Some(Action::TcpSocket(TcpSocketAction {
                host: "127.0.0.1".into(),
                port: tcp_port.to_string(),
            })),
        },
        1,
    ));
    let mut db = container("db");
    // No host: the host-network pod's is 127.0.0.1.
    db.readiness_probe = Some(probe(
        Handler {
            action: Some(Action::Grpc(GrpcAction {
                port: i32::from(grpc_port),
                service: "db".into(),
            })),
        },
        1,
    ));
    let mut p = pod("kinds", "uid-kinds", vec![web, cache, db]);
    p.host_network = true;
    let events = h.start(request(p)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:#?}",
        events
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_ready = |seen: &[StartEvent]| {
        ["web", "cache", "db"].iter().all(|name| {
            seen.iter()
                .any(|e| e.container_name == *name && e.reason == "ContainerReady")
        })
    };
    while !all_ready(&seen) {
        assert!(Instant::now() < deadline, "{:#?}", reasons(&seen));
        if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(500), feed.recv()).await
            && e.pod_uid == "uid-kinds"
        {
            seen.push(e);
        }
    }
    let pod = get_pod(&h, "uid-kinds").await;
    assert!(pod.ready, "{:?}", newest(&pod));

    health
        .set_service_status("db", tonic_health::ServingStatus::NotServing)
        .await;
    let not_ready = wait_for(&mut feed, &mut seen, "uid-kinds", "db", "ContainerNotReady").await;
    assert_eq!(readiness_of(&not_ready), (false, false));
    let unhealthy = seen
        .iter()
        .rfind(|e| e.reason == "Unhealthy" && e.container_name == "db")
        .unwrap();
    assert_eq!(
        unhealthy.message,
        "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"
    );
    let rows = newest(&get_pod(&h, "uid-kinds").await);
    let ready: Vec<(&str, bool)> = rows.iter().map(|r| (r.0.as_str(), r.3)).collect();
    assert_eq!(ready, [("cache", true), ("db", false), ("web", true)]);

    drop(tcp);
    let gone = wait_for(
        &mut feed,
        &mut seen,
        "uid-kinds",
        "cache",
        "ContainerNotReady",
    )
    .await;
    assert_eq!(readiness_of(&gone), (false, false));
    assert!(
        seen.iter().any(|e| e.container_name == "cache"
            && e.message.starts_with(&format!(
                "Readiness probe failed: dial tcp 127.0.0.1:{tcp_port}: "
            ))),
        "{:#?}",
        reasons(&seen)
    );
    h.stop("uid-kinds").await.unwrap();
}

#[tokio::test]
async fn stop_pod_ends_the_probe_loops() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    web.liveness_probe = Some(probe(exec(&["alive", "exit-codes", "0"]), 3));
    web.readiness_probe = Some(probe(exec(&["ready", "exit-codes", "0"]), 3));
    let events = h
        .start(request(pod("stopping", "uid-stopping", vec![web])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let mut seen = Vec::new();
    wait_for(
        &mut feed,
        &mut seen,
        "uid-stopping",
        "web",
        "ContainerReady",
    )
    .await;
    let probes = |h: &Harness| {
        h.sim
            .execs()
            .iter()
            .filter(|(_, cmd)| cmd.first().is_some_and(|w| w == "alive" || w == "ready"))
            .count()
    };
    assert!(probes(&h) >= 2);
    h.stop("uid-stopping").await.unwrap();
    let after_stop = probes(&h);
    // Three periods without a probe.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(probes(&h), after_stop, "no probe runs after StopPod");
}

#[tokio::test]
async fn probes_resume_after_recovery() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    web.readiness_probe = Some(probe(exec(&["ready", "exit-codes", "0"]), 3));
    let events = h
        .start(request(pod("resume", "uid-resume", vec![web])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let mut seen = Vec::new();
    wait_for(&mut feed, &mut seen, "uid-resume", "web", "ContainerReady").await;
    // podstart goes away: its supervisors and probe workers end.
    h.starter.cancel_all();

    let next = h.restarted_starter();
    let mut next_feed = next.subscribe();
    next.recover().await.unwrap();
    let mut seen = Vec::new();
    let ready = wait_for(
        &mut next_feed,
        &mut seen,
        "uid-resume",
        "web",
        "ContainerReady",
    )
    .await;
    assert_eq!(readiness_of(&ready), (true, true));
    next.cancel_all();
}

#[tokio::test]
async fn an_app_containers_startup_probe_comes_first_and_its_failure_kills() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    // Two failures: killed; the next instance's first run succeeds.
    web.startup_probe = Some(probe(exec(&["started", "exit-codes", "1,1,0"]), 2));
    web.liveness_probe = Some(probe(exec(&["alive", "exit-codes", "0"]), 1));
    let events = h
        .start(request(pod("startup", "uid-startup", vec![web])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let mut seen = Vec::new();
    let killing = wait_for(&mut feed, &mut seen, "uid-startup", "web", "Killing").await;
    assert_eq!(
        killing.message,
        "Container web failed startup probe, will be restarted"
    );
    let failures: Vec<&str> = seen
        .iter()
        .filter(|e| e.reason == "Unhealthy")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        failures,
        [
            "Startup probe failed: command exited with code 1",
            "Startup probe failed: command exited with code 1"
        ]
    );
    // The liveness probe waits for the startup probe: it never ran on the
    // killed instance.
    let first = events
        .iter()
        .find_map(|e| match &e.payload {
            Some(Payload::Container(c)) if e.reason == "Created" => Some(c.container_id.clone()),
            _ => None,
        })
        .expect("the first instance's Created event");
    let execs = h.sim.execs();
    assert!(
        !execs
            .iter()
            .any(|(id, cmd)| *id == first && cmd.first().is_some_and(|w| w == "alive")),
        "{execs:?}"
    );
    // The restarted instance passes it and is ready (its startup probe
    // gates readiness).
    let ready = wait_for(&mut feed, &mut seen, "uid-startup", "web", "ContainerReady").await;
    assert_eq!(readiness_of(&ready), (true, true));
    assert_eq!(newest(&get_pod(&h, "uid-startup").await)[0].1, 1);
    h.stop("uid-startup").await.unwrap();
}

#[tokio::test]
async fn under_restart_policy_never_a_failed_liveness_probe_only_kills() {
    let h = Harness::new().await;
    let mut feed = h.starter.subscribe();
    let mut web = container("web");
    web.liveness_probe = Some(probe(exec(&["false"]), 1));
    let mut p = pod("never", "uid-never", vec![web]);
    p.set_restart_policy(podstart::proto::v1::RestartPolicy::Never);
    let events = h.start(request(p)).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let mut seen = Vec::new();
    let killing = wait_for(&mut feed, &mut seen, "uid-never", "web", "Killing").await;
    assert_eq!(killing.message, "Container web failed liveness probe");
    wait_for(&mut feed, &mut seen, "uid-never", "web", "Error").await;
    let rows = newest(&get_pod(&h, "uid-never").await);
    assert_eq!(rows[0].1, 0, "not restarted");
    assert_eq!(rows[0].2, ContainerState::Exited);
    assert!(!rows[0].3);
    h.stop("uid-never").await.unwrap();
}
