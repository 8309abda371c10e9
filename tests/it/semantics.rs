//! The kubelet's start semantics against the simulated runtime, one test
//! per rule: sidecars and startup probes, ephemeral containers through
//! StartContainer, waiting for exits, restartPolicy, restartCount, the
//! crash-loop back-off, lifecycle hooks and termination messages. Each
//! asserts the exact event sequence and reasons.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::common::*;
use podstart::proto::v1::{
    Container, ContainerKind, ContainerRestartPolicy, ExecAction, Handler, HttpGetAction,
    Lifecycle, PodRef, Probe, RestartPolicy, SleepAction, StartContainerRequest, StartEvent,
    StopPodRequest, TcpSocketAction, TerminationMessagePolicy, WatchEventsRequest, handler::Action,
    start_event::Payload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::Code;

// ------------------------------------------------------------ helpers

fn exec(cmd: &[&str]) -> Handler {
    Handler {
        action: Some(Action::Exec(ExecAction {
            command: cmd.iter().map(|s| s.to_string()).collect(),
        })),
    }
}

fn probe(handler: Handler, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        handler: Some(handler),
        period_seconds: period,
        failure_threshold,
        ..Default::default()
    }
}

fn sidecar(name: &str, startup_probe: Option<Probe>) -> Container {
    let mut c = container(name);
    c.set_restart_policy(ContainerRestartPolicy::Always);
    c.startup_probe = startup_probe;
    c
}

fn post_start(h: Handler) -> Option<Lifecycle> {
    Some(Lifecycle {
        post_start: Some(h),
        pre_stop: None,
    })
}

fn payload_exit(e: &StartEvent) -> &podstart::proto::v1::ContainerExit {
    match &e.payload {
        Some(Payload::Exit(x)) => x,
        other => panic!("{} carries no exit: {other:?}", e.reason),
    }
}

fn created_counts(events: &[StartEvent], who: &str) -> Vec<(u32, String)> {
    events
        .iter()
        .filter(|e| e.reason == "Created" && e.container_name == who)
        .filter_map(|e| match &e.payload {
            Some(Payload::Container(c)) => Some((c.restart_count, c.log_path.clone())),
            _ => None,
        })
        .collect()
}

/// An HTTP server answering each request with the next of `statuses` (the
/// last repeats); returns its port and the number of connections.
async fn http_server(statuses: Vec<u16>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

/// Follows the node-wide feed for `uid` until `done` holds for what was
/// seen (or 10 s pass).
async fn watch_until(
    h: &Harness,
    uid: &str,
    start: impl std::future::Future<Output = ()>,
    done: impl Fn(&[StartEvent]) -> bool,
) -> Vec<StartEvent> {
    let mut feed = h
        .client
        .clone()
        .watch_events(WatchEventsRequest {
            pod_uid: uid.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    start.await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&seen) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), feed.next()).await {
            Ok(Some(Ok(e))) => seen.push(e),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    seen
}

async fn start_container(h: &Harness, uid: &str, c: Container) -> Vec<StartEvent> {
    let stream = h
        .client
        .clone()
        .start_container(StartContainerRequest {
            pod_uid: uid.into(),
            container: Some(c),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    collect(stream).await
}

// ------------------------------------------------------------ 1. sidecars

#[tokio::test]
async fn sidecar_gates_the_next_init_container_until_its_startup_probe_succeeds() {
    let h = Harness::new().await;
    let mut p = pod("side", "uid-side", vec![container("app")]);
    p.init_containers = vec![
        sidecar(
            "proxy",
            Some(probe(exec(&["check", "fail-first", "2"]), 1, 3)),
        ),
        exiting("second", 0, 10),
    ];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("proxy", "Pulled"),
            ("proxy", "Created"),
            ("proxy", "Started"),
            ("proxy", "Unhealthy"),
            ("proxy", "Unhealthy"),
            ("proxy", "StartupProbeSucceeded"),
            ("second", "Pulled"),
            ("second", "Created"),
            ("second", "Started"),
            ("second", "Completed"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    assert_eq!(
        events[4].message,
        "Startup probe failed: command exited with code 1"
    );
    assert_eq!(events[4].container_kind(), ContainerKind::Sidecar);
    let Payload::PodStarted(done) = terminal(&events) else {
        panic!("expected PodStarted");
    };
    let kinds: Vec<_> = done
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("proxy", ContainerKind::Sidecar),
            ("second", ContainerKind::Init),
            ("app", ContainerKind::App),
        ]
    );
}

#[tokio::test]
async fn failed_startup_probe_kills_and_restarts_the_sidecar() {
    let h = Harness::new().await;
    let mut p = pod("probefail", "uid-probefail", vec![container("app")]);
    p.init_containers = vec![sidecar(
        "proxy",
        Some(probe(exec(&["check", "fail-first", "1"]), 1, 1)),
    )];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("proxy", "Pulled"),
            ("proxy", "Created"),
            ("proxy", "Started"),
            ("proxy", "Unhealthy"),
            ("proxy", "Killing"),
            // The first restart goes at once, as in the kubelet.
            ("proxy", "Pulled"),
            ("proxy", "Created"),
            ("proxy", "Started"),
            ("proxy", "StartupProbeSucceeded"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    assert_eq!(
        events[5].message,
        "Init container proxy failed startup probe"
    );
    let counts: Vec<u32> = created_counts(&events, "proxy")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(counts, vec![0, 1]);
}

#[tokio::test]
async fn http_and_tcp_startup_probes_gate_sidecars() {
    let h = Harness::privileged().await;
    let (http_port, hits) = http_server(vec![503, 200]).await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let http_probe = Handler {
        action: Some(Action::HttpGet(HttpGetAction {
            host: "127.0.0.1".into(),
            port: http_port.to_string(),
            path: "/healthz".into(),
            ..Default::default()
        })),
    };
    let tcp_probe = Handler {
        action: Some(Action::TcpSocket(TcpSocketAction {
            host: "127.0.0.1".into(),
            port: tcp_port.to_string(),
        })),
    };
    let mut p = pod("probes", "uid-probes", vec![container("app")]);
    p.init_containers = vec![
        sidecar("web", Some(probe(http_probe, 1, 3))),
        sidecar("db", Some(probe(tcp_probe, 1, 3))),
    ];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("web", "Pulled"),
            ("web", "Created"),
            ("web", "Started"),
            ("web", "Unhealthy"),
            ("web", "StartupProbeSucceeded"),
            ("db", "Pulled"),
            ("db", "Created"),
            ("db", "Started"),
            ("db", "StartupProbeSucceeded"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    assert_eq!(
        events[4].message,
        "Startup probe failed: HTTP probe failed with statuscode: 503"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    drop(tcp);
}

#[tokio::test]
async fn sidecar_that_exits_while_starting_is_restarted() {
    let h = Harness::new().await;
    let mut p = pod("sideexit", "uid-sideexit", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::Never);
    let mut proxy = sidecar(
        "proxy",
        Some(Probe {
            initial_delay_seconds: 1,
            ..probe(exec(&["true"]), 1, 3)
        }),
    );
    proxy = scripted(proxy, &[("EXIT_CODES", "1,run"), ("RUN_MS", "5")]);
    p.init_containers = vec![proxy];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("proxy", "Pulled"),
            ("proxy", "Created"),
            ("proxy", "Started"),
            ("proxy", "Error"),
            ("proxy", "Pulled"),
            ("proxy", "Created"),
            ("proxy", "Started"),
            ("proxy", "StartupProbeSucceeded"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ]),
        "a sidecar restarts even under restartPolicy Never"
    );
    assert_eq!(payload_exit(&events[4]).exit_code, 1);
}

// ------------------------------------------------------------ 2. ephemeral containers

#[tokio::test]
async fn start_container_adds_an_ephemeral_container_in_the_target_pid_namespace() {
    let h = Harness::new().await;
    let started = h
        .start(request(pod("eph", "uid-eph2", vec![container("app")])))
        .await
        .unwrap();
    let Payload::PodStarted(pod_done) = terminal(&started) else {
        panic!("pod did not start");
    };
    let app_id = pod_done.containers[0].container_id.clone();

    let mut debug = container("debug");
    debug.target_container_name = "app".into();
    let events = start_container(&h, "uid-eph2", debug.clone()).await;
    assert_eq!(
        reasons(&events),
        seq(&[
            ("debug", "Pulled"),
            ("debug", "Created"),
            ("debug", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    assert!(
        events
            .iter()
            .take(3)
            .all(|e| e.container_kind() == ContainerKind::Ephemeral)
    );
    let Payload::PodStarted(done) = terminal(&events) else {
        panic!("expected PodStarted");
    };
    assert_eq!(done.sandbox_id, pod_done.sandbox_id);
    let config = h
        .sim
        .container_config(&done.containers[0].container_id)
        .unwrap();
    let ns = config
        .linux
        .unwrap()
        .security_context
        .unwrap()
        .namespace_options
        .unwrap();
    assert_eq!(ns.pid, k8s_cri::v1::NamespaceMode::Target as i32);
    assert_eq!(ns.target_id, app_id);
    assert_eq!(config.labels["io.kubernetes.pod.uid"], "uid-eph2");

    // The same ephemeral container again: reported, not started twice.
    let again = start_container(&h, "uid-eph2", debug).await;
    assert_eq!(
        reasons(&again),
        seq(&[("debug", "AlreadyStarted"), ("pod", "PodStarted")])
    );
    assert_eq!(h.sim.calls("CreateContainer"), 2);
}

#[tokio::test]
async fn start_container_errors_are_reported_on_its_stream() {
    let h = Harness::new().await;
    let mut p = pod("ephfail", "uid-ephfail", vec![container("app")]);
    p.init_containers = vec![exiting("init", 0, 5)];
    h.start(request(p)).await.unwrap();

    let mut unknown = container("debug");
    unknown.target_container_name = "nope".into();
    let events = start_container(&h, "uid-ephfail", unknown).await;
    assert_eq!(reasons(&events), seq(&[("pod", "InvalidSpec")]));
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.code, Code::InvalidArgument as i32);
    assert!(
        failed
            .message
            .starts_with("container.target_container_name")
    );

    let taken = start_container(&h, "uid-ephfail", container("app")).await;
    let Payload::PodFailed(failed) = terminal(&taken) else {
        panic!("expected PodFailed");
    };
    assert!(
        failed.message.starts_with("container.name"),
        "{}",
        failed.message
    );

    let mut not_running = container("debug");
    not_running.target_container_name = "init".into();
    let events = start_container(&h, "uid-ephfail", not_running).await;
    assert_eq!(
        reasons(&events),
        seq(&[("debug", "Pulled"), ("debug", "CreateContainerConfigError")])
    );
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.message, "target container \"init\" is not running");
}

#[tokio::test]
async fn ephemeral_containers_are_never_restarted() {
    let h = Harness::new().await;
    h.start(request(pod(
        "ephonce",
        "uid-ephonce",
        vec![container("app")],
    )))
    .await
    .unwrap();
    let quick = exiting("debug", 3, 5);
    start_container(&h, "uid-ephonce", quick.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = start_container(&h, "uid-ephonce", quick).await;
    assert_eq!(
        reasons(&again),
        seq(&[("debug", "AlreadyStarted"), ("pod", "PodStarted")])
    );
    assert_eq!(
        again[0].message,
        "Container debug already exited with code 3; ephemeral containers are never restarted"
    );
    assert_eq!(h.sim.calls("CreateContainer"), 2);
}

// ------------------------------------------------------------ 3. waiting for exits

#[tokio::test]
async fn init_exits_are_seen_through_container_events_without_polling() {
    let h = Harness::new().await;
    let mut p = pod("evwait", "uid-evwait", vec![container("app")]);
    p.init_containers = vec![exiting("slow", 0, 400)];
    let events = h.start(request(p)).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    assert!(h.sim.calls("GetContainerEvents") >= 1);
    // Polling every 20 ms would read the status about 20 times in 400 ms.
    assert!(
        h.sim.calls("ContainerStatus") <= 4,
        "{} status reads",
        h.sim.calls("ContainerStatus")
    );
}

#[tokio::test]
async fn without_container_events_exits_are_seen_by_relisting_the_node() {
    let h = Harness::with_sim(|s| s.no_container_events = true, |_| {}).await;
    let mut p = pod("pollwait", "uid-pollwait", vec![container("app")]);
    p.init_containers = vec![exiting("a", 0, 200), exiting("b", 0, 200)];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events)
            .iter()
            .filter(|(_, r)| r == "Completed")
            .count(),
        2
    );
    assert_eq!(
        h.sim.calls("GetContainerEvents"),
        1,
        "UNIMPLEMENTED is remembered"
    );
    // The node is relisted every 20 ms (the harness's relist period): the
    // waits read the watcher's table, not each container's status.
    assert!(h.sim.calls("ListContainers") >= 10);
    assert!(
        h.sim.calls("ContainerStatus") <= 8,
        "{} status reads",
        h.sim.calls("ContainerStatus")
    );
}

// ------------------------------------------------------------ 4. restartPolicy and restartCount

#[tokio::test]
async fn init_container_restarts_under_on_failure_until_it_succeeds() {
    let h = Harness::new().await;
    let mut p = pod("onfail", "uid-onfail", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::OnFailure);
    p.init_containers = vec![scripted(
        container("migrate"),
        &[("EXIT_CODES", "1,1,0"), ("RUN_MS", "5")],
    )];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("migrate", "Pulled"),
            ("migrate", "Created"),
            ("migrate", "Started"),
            ("migrate", "Error"),
            ("migrate", "Pulled"),
            ("migrate", "Created"),
            ("migrate", "Started"),
            ("migrate", "Error"),
            ("migrate", "BackOff"),
            ("migrate", "Pulled"),
            ("migrate", "Created"),
            ("migrate", "Started"),
            ("migrate", "Completed"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    let counts = created_counts(&events, "migrate");
    let attempts: Vec<u32> = counts.iter().map(|c| c.0).collect();
    assert_eq!(attempts, vec![0, 1, 2]);
    for (n, path) in &counts {
        assert!(path.ends_with(&format!("migrate/{n}.log")), "{path}");
    }
}

#[tokio::test]
async fn restart_count_continues_from_the_log_directory() {
    let h = Harness::new().await;
    let dir = h.log_root.join("default_logs_uid-logs").join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("4.log"), "").unwrap();
    std::fs::write(dir.join("2.log.20250101-000000"), "").unwrap();
    let events = h
        .start(request(pod("logs", "uid-logs", vec![container("app")])))
        .await
        .unwrap();
    let counts = created_counts(&events, "app");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].0, 5);
    assert!(counts[0].1.ends_with("app/5.log"), "{}", counts[0].1);
}

#[tokio::test]
async fn app_container_that_completes_under_on_failure_is_not_restarted() {
    let h = Harness::new().await;
    let mut p = pod("job", "uid-job", vec![exiting("task", 0, 20)]);
    p.set_restart_policy(RestartPolicy::OnFailure);
    let seen = watch_until(
        &h,
        "uid-job",
        async {
            h.start(request(p)).await.unwrap();
        },
        |seen| seen.iter().any(|e| e.reason == "Completed"),
    )
    .await;
    let done = seen.iter().find(|e| e.reason == "Completed").unwrap();
    assert_eq!(
        done.message,
        "Container task exited with code 0 (Completed); restartPolicy OnFailure does not restart it"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.sim.calls("CreateContainer"), 1);
}

// ------------------------------------------------------------ 5. crash-loop back-off

#[tokio::test]
async fn crashing_app_container_backs_off_with_doubling_delays() {
    let h = Harness::new().await; // back-off 50 ms doubling to 200 ms
    let p = pod("crashy", "uid-crash", vec![exiting("crash", 1, 5)]);
    let seen = watch_until(
        &h,
        "uid-crash",
        async {
            h.start(request(p)).await.unwrap();
        },
        |seen| seen.iter().filter(|e| e.reason == "BackOff").count() >= 4,
    )
    .await;
    let crash: Vec<&StartEvent> = seen
        .iter()
        .filter(|e| e.container_name == "crash")
        .collect();
    let backoffs: Vec<_> = crash.iter().filter(|e| e.reason == "BackOff").collect();
    assert!(backoffs.len() >= 4, "{:#?}", reasons(&seen));
    let mut delays = Vec::new();
    for b in &backoffs {
        assert_eq!(
            b.message,
            "Back-off restarting failed container crash in pod crashy_default(uid-crash)"
        );
        let Some(Payload::BackOff(info)) = &b.payload else {
            panic!("BackOff carries its delay");
        };
        assert_eq!(info.waiting_reason, "CrashLoopBackOff");
        assert!(
            info.message
                .ends_with(" restarting failed container=crash pod=crashy_default(uid-crash)"),
            "{}",
            info.message
        );
        delays.push(info.delay_micros / 1000);
    }
    assert_eq!(&delays[..4], &[50, 100, 200, 200]);
    assert!(backoffs[0].r#type == podstart::proto::v1::EventType::Warning as i32);
    // Between two back-offs: the exit, then the restart.
    let after_first_restart: Vec<&str> = crash
        .iter()
        .map(|e| e.reason.as_str())
        .skip_while(|r| *r != "BackOff")
        .take(5)
        .collect();
    assert_eq!(
        after_first_restart,
        vec!["BackOff", "Pulled", "Created", "Started", "Error"]
    );
    h.stop("uid-crash").await.unwrap();
}

// ------------------------------------------------------------ 6. hooks

#[tokio::test]
async fn post_start_exec_timeout_is_configurable() {
    let h = Harness::with(|f| f.flow.hook_timeout = Duration::from_secs(1)).await;
    let mut c = container("app");
    c.lifecycle = post_start(exec(&["sleep", "30"]));
    let began = Instant::now();
    let events = h
        .start(request(pod("slowhook", "uid-slowhook", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("app", "FailedPostStartHook"),
            ("app", "Killing"),
            ("app", "PostStartHookError"),
        ])
    );
    assert!(began.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn https_hook_answered_in_plain_http_falls_back_to_http() {
    let h = Harness::privileged().await;
    let (port, hits) = http_server(vec![200]).await;
    let mut c = container("app");
    c.lifecycle = post_start(Handler {
        action: Some(Action::HttpGet(HttpGetAction {
            scheme: "HTTPS".into(),
            host: "127.0.0.1".into(),
            port: port.to_string(),
            path: "/ready".into(),
            ..Default::default()
        })),
    });
    let events = h
        .start(request(pod("tls", "uid-tls", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("app", "LifecycleHTTPFallback"),
            ("app", "PostStartHookSucceeded"),
            ("pod", "PodStarted"),
        ])
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the TLS try, then HTTP");
}

#[tokio::test]
async fn http_hook_reads_at_most_10_kib_of_the_body() {
    let h = Harness::privileged().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n";
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&vec![b'x'; 64 * 1024]).await;
                // Then stall: a reader that wants the whole body would hang.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let mut c = container("app");
    c.lifecycle = post_start(Handler {
        action: Some(Action::HttpGet(HttpGetAction {
            host: "127.0.0.1".into(),
            port: port.to_string(),
            path: "/".into(),
            ..Default::default()
        })),
    });
    let began = Instant::now();
    let events = h
        .start(request(pod("bigbody", "uid-bigbody", vec![c])))
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.reason == "PostStartHookSucceeded"),
        "{:#?}",
        reasons(&events)
    );
    assert!(began.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn sleep_hook_ends_when_the_container_stops() {
    let h = Harness::new().await;
    let mut c = exiting("app", 0, 200);
    c.lifecycle = post_start(Handler {
        action: Some(Action::Sleep(SleepAction { seconds: 30 })),
    });
    let began = Instant::now();
    let events = h
        .start(request(pod("sleepy", "uid-sleepy2", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("app", "FailedPostStartHook"),
            ("app", "Killing"),
            ("app", "PostStartHookError"),
        ])
    );
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert!(
        failed
            .message
            .contains("container terminated before sleep hook finished"),
        "{}",
        failed.message
    );
    assert!(began.elapsed() < Duration::from_secs(5));
}

async fn stop_with_grace(h: &Harness, uid: &str, grace: i64) -> Vec<StartEvent> {
    let stream = h
        .client
        .clone()
        .stop_pod(StopPodRequest {
            pod: Some(PodRef {
                uid: uid.into(),
                ..Default::default()
            }),
            grace_period_seconds: Some(grace),
        })
        .await
        .unwrap()
        .into_inner();
    collect(stream).await
}

fn pre_stop(h: Handler) -> Option<Lifecycle> {
    Some(Lifecycle {
        post_start: None,
        pre_stop: Some(h),
    })
}

#[tokio::test]
async fn pre_stop_is_bounded_by_the_grace_period() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = pre_stop(exec(&["sleep", "30"]));
    h.start(request(pod("prestop", "uid-prestop2", vec![c])))
        .await
        .unwrap();
    let began = Instant::now();
    let events = stop_with_grace(&h, "uid-prestop2", 1).await;
    let took = began.elapsed();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("app", "FailedPreStopHook"),
            ("app", "Killing"),
            ("pod", "SandboxRemoved"),
            ("pod", "LogsRemoved"),
            ("pod", "PodStopped"),
        ])
    );
    // The exec hook runs with the grace period as its timeout (1 s); the
    // hook as a whole gets at least 2 s.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test]
async fn zero_grace_skips_pre_stop() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = pre_stop(exec(&["sh", "-c", "echo bye"]));
    h.start(request(pod("nograce", "uid-nograce", vec![c])))
        .await
        .unwrap();
    let events = stop_with_grace(&h, "uid-nograce", 0).await;
    assert_eq!(
        reasons(&events),
        seq(&[
            ("app", "Killing"),
            ("pod", "SandboxRemoved"),
            ("pod", "LogsRemoved"),
            ("pod", "PodStopped"),
        ])
    );
    assert!(h.sim.execs().is_empty());
}

#[tokio::test]
async fn hook_failures_never_carry_what_the_command_printed() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = Some(Lifecycle {
        post_start: Some(exec(&["sh", "-c", "echo s3cr3t-token; exit 2"])),
        pre_stop: None,
    });
    let events = h
        .start(request(pod("leak", "uid-leak", vec![c])))
        .await
        .unwrap();
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.reason, "PostStartHookError");
    let text = format!("{events:?}");
    assert!(!text.contains("s3cr3t"), "hook output leaked: {text}");
    assert_eq!(
        failed.message,
        "1 of 1 containers failed to start; first: PostStartHook failed: exec hook exited with code 2"
    );
}

// ------------------------------------------------------------ 7. termination messages

#[tokio::test]
async fn init_exit_events_carry_the_termination_message() {
    let h = Harness::new().await;
    let mut p = pod("tmsg", "uid-tmsg", vec![container("app")]);
    p.init_containers = vec![scripted(
        exiting("migrate", 0, 10),
        &[("TERMINATION_MESSAGE", "migrated 42 rows")],
    )];
    let events = h.start(request(p)).await.unwrap();
    let done = events.iter().find(|e| e.reason == "Completed").unwrap();
    assert_eq!(payload_exit(done).message, "migrated 42 rows");
}

#[tokio::test]
async fn fallback_to_logs_on_error_reports_the_log_tail() {
    let h = Harness::new().await;
    let mut p = pod("tlog", "uid-tlog", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::Never);
    let mut init = scripted(
        exiting("check", 1, 10),
        &[("LOG", "step 1|boom: disk full")],
    );
    init.set_termination_message_policy(TerminationMessagePolicy::FallbackToLogsOnError);
    let mut quiet = scripted(exiting("quiet", 1, 10), &[("LOG", "not reported")]);
    quiet.set_termination_message_policy(TerminationMessagePolicy::File);
    p.init_containers = vec![init];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("check", "Pulled"),
            ("check", "Created"),
            ("check", "Started"),
            ("check", "Error"),
            ("check", "InitContainerFailed"),
        ])
    );
    assert_eq!(
        payload_exit(&events[4]).message,
        "step 1\nboom: disk full\n"
    );

    // Under the File policy the log is never read.
    let mut p = pod("tfile", "uid-tfile", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::Never);
    p.init_containers = vec![quiet];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(payload_exit(&events[4]).message, "");
}
