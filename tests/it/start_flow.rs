//! The start and stop flows against the simulated runtime: the exact event
//! sequence and status of each scenario.

use crate::common::*;
use podstart::proto::v1::{AppStartMode, ExecAction, StartOptions};
use podstart::proto::v1::{
    ContainerKind, ContainerState, GetPodRequest, Handler, Lifecycle, ListPodsRequest, PodRef,
    PullPolicy, RestartPolicy, SandboxState, StartContainerRequest, Step, WatchEventsRequest,
    handler::Action, start_event::Payload,
};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn happy_path_one_container() {
    let h = Harness::new().await;
    let events = h
        .start(request(pod("web", "uid-happy", vec![container("app")])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    let Payload::PodStarted(done) = terminal(&events) else {
        panic!("expected PodStarted, got {:?}", terminal(&events));
    };
    assert_eq!(done.ips.len(), 1, "a pod-network sandbox has an IP");
    assert_eq!(done.containers.len(), 1);
    assert!(!done.already_running);
    let steps: Vec<Step> = done.timings.iter().map(|t| t.step()).collect();
    assert_eq!(
        steps,
        vec![Step::Sandbox, Step::Image, Step::Create, Step::Start]
    );
    // Step events carry how long the step took.
    let created = events.iter().find(|e| e.reason == "Created").unwrap();
    assert!(created.duration_micros > 0);
    assert_eq!(created.container_kind(), ContainerKind::App);
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(
        h.sim.calls("PullImage"),
        0,
        "IfNotPresent with the image present"
    );
    // The pod's log directory was created by podstart.
    assert!(h.log_root.join("default_web_uid-happy").is_dir());
}

#[tokio::test]
async fn absent_image_is_pulled_with_kubelet_messages() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.image = "registry.test/other/image:2.0".into();
    // The kubelet's order: the pull at the container's turn (pre-pull has
    // its own tests in tests/images.rs).
    let mut req = request(pod("pull", "uid-pull", vec![c]));
    req.options = Some(StartOptions {
        no_pre_pull: true,
        ..Default::default()
    });
    let events = h.start(req).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulling"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    let pulling = events.iter().find(|e| e.reason == "Pulling").unwrap();
    assert_eq!(
        pulling.message,
        "Pulling image \"registry.test/other/image:2.0\""
    );
    let pulled = events.iter().find(|e| e.reason == "Pulled").unwrap();
    assert!(
        pulled
            .message
            .starts_with("Successfully pulled image \"registry.test/other/image:2.0\" in "),
        "{}",
        pulled.message
    );
    assert_eq!(h.sim.calls("PullImage"), 1);
}

#[tokio::test]
async fn latest_tag_defaults_to_always_pull() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.image = "registry.test/podstart/busybox".into();
    c.set_image_pull_policy(PullPolicy::Unspecified);
    let events = h
        .start(request(pod("latest", "uid-latest", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        h.sim.calls("PullImage"),
        1,
        "no tag means :latest, which means Always"
    );
    let pulling = events.iter().find(|e| e.reason == "Pulling").unwrap();
    assert_eq!(
        pulling.message,
        "Pulling image \"registry.test/podstart/busybox:latest\""
    );
}

#[tokio::test]
async fn init_containers_run_in_order_before_apps() {
    let h = Harness::new().await;
    let mut p = pod("inits", "uid-inits", vec![container("app")]);
    p.init_containers = vec![exiting("first", 0, 30), exiting("second", 0, 10)];
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("first", "Pulled"),
            ("first", "Created"),
            ("first", "Started"),
            ("first", "Completed"),
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
    let completed = events.iter().find(|e| e.reason == "Completed").unwrap();
    assert_eq!(completed.container_kind(), ContainerKind::Init);
    let Some(Payload::Exit(exit)) = &completed.payload else {
        panic!("Completed carries the exit");
    };
    assert_eq!(exit.exit_code, 0);
}

#[tokio::test]
async fn failed_init_container_fails_the_pod_under_never() {
    let h = Harness::new().await;
    let mut p = pod("initfail", "uid-initfail", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::Never);
    p.init_containers = vec![exiting("check", 3, 10)];
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
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.reason, "InitContainerFailed");
    assert_eq!(failed.code, Code::Aborted as i32);
    assert_eq!(failed.step(), Step::WaitExit);
    assert_eq!(failed.container_name, "check");
    // The app container may have been made ahead of its turn: it is
    // never started, and removed.
    assert_eq!(h.sim.calls("StartContainer"), 1, "the app never starts");
    assert_eq!(h.sim.container_count(), 1, "only the failed init stays");
}

#[tokio::test]
async fn failed_init_container_restarts_with_backoff_until_stopped() {
    let h = Harness::new().await;
    let mut p = pod("initloop", "uid-initloop", vec![container("app")]);
    p.set_restart_policy(RestartPolicy::Always);
    p.init_containers = vec![exiting("flaky", 1, 5)];
    let client = h.client.clone();
    let stream = tokio::spawn(async move {
        let mut c = client;
        collect(c.start_pod(request(p)).await.unwrap().into_inner()).await
    });
    // Let it fail and restart at least three times (the first restart goes
    // at once, as in the kubelet; the later ones back off), then stop it.
    // (The app container is never started; it may be made ahead.)
    for _ in 0..300 {
        if h.sim.calls("StartContainer") >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        h.sim.calls("StartContainer") >= 4,
        "the init container was restarted"
    );
    let stop = h.stop("uid-initloop").await.unwrap();
    assert!(matches!(terminal(&stop), Payload::PodStopped(_)));
    let events = stream.await.unwrap();
    let backoffs: Vec<_> = events.iter().filter(|e| e.reason == "BackOff").collect();
    assert!(backoffs.len() >= 2, "{:#?}", reasons(&events));
    assert_eq!(
        backoffs[0].message,
        "Back-off restarting failed container flaky in pod initloop_default(uid-initloop)"
    );
    // Each restart is a new attempt with the next restart count.
    let counts: Vec<u32> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::Container(c)) if e.reason == "Created" => Some(c.restart_count),
            _ => None,
        })
        .collect();
    assert_eq!(&counts[..3], &[0, 1, 2]);
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("a cancelled start fails");
    };
    assert_eq!(failed.reason, "Cancelled");
    assert_eq!(failed.code, Code::Cancelled as i32);
    assert_eq!(h.sim.sandbox_count(), 0);
}

#[tokio::test]
async fn absent_image_with_never_fails_before_create() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.image = "registry.test/not/here:1".into();
    c.set_image_pull_policy(PullPolicy::Never);
    let events = h
        .start(request(pod("never", "uid-never", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "ErrImageNeverPull"),
            ("app", "ErrImageNeverPull"),
        ])
    );
    assert_eq!(
        events[1].message,
        "Container image \"registry.test/not/here:1\" is not present with pull policy of Never"
    );
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.code, Code::FailedPrecondition as i32);
    assert_eq!(failed.step(), Step::Image);
    assert_eq!(h.sim.calls("PullImage"), 0);
    assert_eq!(h.sim.calls("CreateContainer"), 0);
}

#[tokio::test]
async fn failed_pull_is_err_image_pull() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.image = "registry.test/does-not-exist:1".into();
    let events = h
        .start(request(pod("pullfail", "uid-pullfail", vec![c])))
        .await
        .unwrap();
    let failed_event = events.iter().find(|e| e.reason == "Failed").unwrap();
    assert!(
        failed_event
            .message
            .starts_with("Failed to pull image \"registry.test/does-not-exist:1\": "),
        "{}",
        failed_event.message
    );
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.reason, "ErrImagePull");
}

fn exec_hook(cmd: &[&str]) -> Lifecycle {
    Lifecycle {
        post_start: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: cmd.iter().map(|s| s.to_string()).collect(),
            })),
        }),
        pre_stop: None,
    }
}

#[tokio::test]
async fn post_start_hook_runs_in_the_container() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = Some(exec_hook(&["sh", "-c", "touch /tmp/ready"]));
    let events = h
        .start(request(pod("hook", "uid-hook", vec![c])))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("app", "PostStartHookSucceeded"),
            ("pod", "PodStarted"),
        ])
    );
    let execs = h.sim.execs();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].1, vec!["sh", "-c", "touch /tmp/ready"]);
}

#[tokio::test]
async fn failing_post_start_hook_kills_the_container() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = Some(exec_hook(&["sh", "-c", "exit 2"]));
    let events = h
        .start(request(pod("hookfail", "uid-hookfail", vec![c])))
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
    let hook_event = &events[4];
    assert_eq!(hook_event.message, "PostStartHook failed");
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.step(), Step::PostStart);
    assert_eq!(failed.container_name, "app");
    assert_eq!(h.sim.calls("StopContainer"), 1);
    let pod = h
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: "uid-hookfail".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.containers[0].state(), ContainerState::Exited);
}

#[tokio::test]
async fn app_containers_start_independently_and_each_failure_is_reported() {
    let h = Harness::new().await;
    let mut broken = container("broken");
    broken.env.push(podstart::proto::v1::EnvVar {
        name: "PODSTART_SIM_START_ERROR".into(),
        value: "exec: \"/nonexistent\": stat /nonexistent: no such file or directory".into(),
        ..Default::default()
    });
    let events = h
        .start(request(pod(
            "mixed",
            "uid-mixed",
            vec![broken, container("fine")],
        )))
        .await
        .unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("broken", "Pulled"),
            ("broken", "Created"),
            ("broken", "Failed"),
            ("fine", "Pulled"),
            ("fine", "Created"),
            ("fine", "Started"),
            ("broken", "RunContainerError"),
        ])
    );
    assert!(
        events[3].message.starts_with("Error: "),
        "{}",
        events[3].message
    );
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed");
    };
    assert_eq!(failed.step(), Step::Start);
    assert!(
        failed.message.contains("1 of 2 containers failed"),
        "{}",
        failed.message
    );
}

#[tokio::test]
async fn parallel_app_start_starts_every_container() {
    let h = Harness::new().await;
    let mut req = request(pod(
        "par",
        "uid-par",
        vec![container("a"), container("b"), container("c")],
    ));
    let mut options = StartOptions::default();
    options.set_app_start(AppStartMode::Parallel);
    req.options = Some(options);
    let events = h.start(req).await.unwrap();
    let Payload::PodStarted(done) = terminal(&events) else {
        panic!("expected PodStarted: {:#?}", reasons(&events));
    };
    assert_eq!(done.containers.len(), 3);
    assert_eq!(h.sim.calls("StartContainer"), 3);
}

#[tokio::test]
async fn second_start_of_a_running_pod_creates_nothing() {
    let h = Harness::new().await;
    let req = request(pod("twice", "uid-twice", vec![container("app")]));
    h.start(req.clone()).await.unwrap();
    let again = h.start(req).await.unwrap();
    assert_eq!(
        reasons(&again),
        seq(&[
            ("pod", "SandboxReady"),
            ("app", "AlreadyStarted"),
            ("pod", "PodStarted"),
        ])
    );
    let Payload::PodStarted(done) = terminal(&again) else {
        panic!("expected PodStarted");
    };
    assert!(done.already_running);
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(h.sim.calls("CreateContainer"), 1);
    assert_eq!(h.sim.sandbox_count(), 1);
    assert_eq!(h.sim.container_count(), 1);
}

#[tokio::test]
async fn half_started_pod_is_resumed() {
    let h = Harness::new().await;
    // First attempt: the second app container fails to start.
    let mut broken = container("second");
    broken.env.push(podstart::proto::v1::EnvVar {
        name: "PODSTART_SIM_START_ERROR".into(),
        value: "boom".into(),
        ..Default::default()
    });
    let first = h
        .start(request(pod(
            "resume",
            "uid-resume",
            vec![container("first"), broken],
        )))
        .await
        .unwrap();
    assert!(matches!(terminal(&first), Payload::PodFailed(_)));
    // Second attempt with the fixed spec: the sandbox and the running
    // container are kept, only the failed one is started again.
    let again = h
        .start(request(pod(
            "resume",
            "uid-resume",
            vec![container("first"), container("second")],
        )))
        .await
        .unwrap();
    assert_eq!(
        reasons(&again),
        seq(&[
            ("pod", "SandboxReady"),
            ("first", "AlreadyStarted"),
            ("second", "Pulled"),
            ("second", "Created"),
            ("second", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    let created = again.iter().find(|e| e.reason == "Created").unwrap();
    let Some(Payload::Container(info)) = &created.payload else {
        panic!("Created carries the container");
    };
    assert_eq!(
        info.restart_count, 1,
        "the failed instance counts as a previous attempt"
    );
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
    assert_eq!(
        h.sim.container_count(),
        2,
        "the instance that never ran is removed: one instance per container"
    );
}

#[tokio::test]
async fn stop_pod_removes_everything() {
    let h = Harness::new().await;
    let mut p = pod("stopme", "uid-stopme", vec![container("a"), container("b")]);
    p.init_containers = vec![exiting("init", 0, 5)];
    h.start(request(p)).await.unwrap();
    assert!(h.log_root.join("default_stopme_uid-stopme").is_dir());

    let events = h.stop("uid-stopme").await.unwrap();
    let mut got = reasons(&events);
    // The two containers stop in parallel: their order may vary.
    got[..2].sort();
    assert_eq!(
        got,
        seq(&[
            ("a", "Killing"),
            ("b", "Killing"),
            ("pod", "SandboxRemoved"),
            ("pod", "LogsRemoved"),
            ("pod", "PodStopped"),
        ])
    );
    let Payload::PodStopped(stopped) = terminal(&events) else {
        panic!("expected PodStopped");
    };
    assert_eq!(stopped.containers_stopped, 2);
    assert_eq!(h.sim.sandbox_count(), 0);
    assert_eq!(h.sim.container_count(), 0);
    assert!(!h.log_root.join("default_stopme_uid-stopme").exists());

    let gone = h
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: "uid-stopme".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = h.stop("uid-stopme").await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn stop_runs_pre_stop_hooks() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = Some(Lifecycle {
        post_start: None,
        pre_stop: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["sh".into(), "-c".into(), "echo draining".into()],
            })),
        }),
    });
    h.start(request(pod("prestop", "uid-prestop", vec![c])))
        .await
        .unwrap();
    let events = h.stop("uid-prestop").await.unwrap();
    assert_eq!(events[0].reason, "PreStopHookSucceeded");
    assert_eq!(events[1].reason, "Killing");
    assert_eq!(h.sim.execs()[0].1, vec!["sh", "-c", "echo draining"]);
}

#[tokio::test]
async fn get_and_list_pods_read_the_runtime() {
    let h = Harness::new().await;
    let mut p = pod("listed", "uid-listed", vec![container("app")]);
    p.init_containers = vec![exiting("init", 0, 5)];
    p.metadata
        .as_mut()
        .unwrap()
        .labels
        .insert("team".into(), "a".into());
    h.start(request(p)).await.unwrap();
    h.start(request(pod("other", "uid-other", vec![container("app")])))
        .await
        .unwrap();

    let pod = h
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                namespace: "default".into(),
                name: "listed".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.uid, "uid-listed");
    assert_eq!(pod.state(), SandboxState::Ready);
    assert_eq!(pod.ips.len(), 1);
    let kinds: Vec<_> = pod
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.kind(), c.state()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("init", ContainerKind::Init, ContainerState::Exited),
            ("app", ContainerKind::App, ContainerState::Running),
        ]
    );

    let all = h
        .client
        .clone()
        .list_pods(ListPodsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pods;
    let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["listed", "other"]);
    let team = h
        .client
        .clone()
        .list_pods(ListPodsRequest {
            label_selector: [("team".to_string(), "a".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pods;
    assert_eq!(team.len(), 1);
    assert_eq!(team[0].name, "listed");
}

#[tokio::test]
async fn watch_events_sees_every_start() {
    let h = Harness::new().await;
    let mut watch = h
        .client
        .clone()
        .watch_events(WatchEventsRequest {
            pod_uid: "uid-watched".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Another pod's events are filtered out.
    h.start(request(pod(
        "unwatched",
        "uid-unwatched",
        vec![container("app")],
    )))
    .await
    .unwrap();
    let started = h
        .start(request(pod(
            "watched",
            "uid-watched",
            vec![container("app")],
        )))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < started.len() {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
            .await
            .expect("watch delivers")
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    assert_eq!(reasons(&seen), reasons(&started));
    assert!(seen.iter().all(|e| e.pod_uid == "uid-watched"));
}

#[tokio::test]
async fn ephemeral_container_failure_does_not_fail_the_pod() {
    let h = Harness::new().await;
    let mut p = pod("eph", "uid-eph", vec![container("app")]);
    let mut debug = container("debug");
    debug.image = "registry.test/does-not-exist:1".into();
    p.ephemeral_containers = vec![debug];
    let mut req = request(p);
    req.options = Some(StartOptions {
        no_pre_pull: true,
        ..Default::default()
    });
    let events = h.start(req).await.unwrap();
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("debug", "Pulling"),
            ("debug", "Failed"),
            ("app", "Pulled"),
            ("app", "Created"),
            ("app", "Started"),
            ("pod", "PodStarted"),
        ])
    );
}

#[tokio::test]
async fn start_container_needs_a_container_and_a_known_pod() {
    let h = Harness::new().await;
    let err = h
        .client
        .clone()
        .start_container(StartContainerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .client
        .clone()
        .start_container(StartContainerRequest {
            pod_uid: "uid-nobody".into(),
            container: Some(container("dbg")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn metrics_count_starts_and_runtime_operations() {
    let h = Harness::new().await;
    h.start(request(pod("m", "uid-m", vec![container("app")])))
        .await
        .unwrap();
    let text = h.metrics.encode();
    assert!(text.contains("podstart_started_pods_total 1"), "{text}");
    assert!(text.contains("podstart_started_containers_total{container_type=\"container\"} 1"));
    assert!(
        text.contains("podstart_runtime_operations_total{operation_type=\"run_podsandbox\"} 1")
    );
    assert!(text.contains("podstart_pod_start_duration_seconds_count 1"));
    assert!(!text.contains("uid-m"), "no pod ids in labels");
}
