//! Recovery after a restart of podstart: a second `Starter` against the
//! same simulated runtime (which outlives the first) takes up the pods the
//! first one left, without any request.
use std::{collections::HashMap, time::Duration};

use k8s_cri::v1 as cri;
use podstart::proto::v1::{AppStartMode, StartEvent, StartOptions, start_event::Payload};
use podstart::sim::Fault;
use podstart::start::{Recovered, Starter};
use tokio::sync::broadcast;

use crate::common::{Harness, container, exiting, pod, request, terminal};

/// The newest instance of each container of the sandboxes of `uid`, by
/// name, and how many sandboxes the pod has.
async fn newest_by_name(starter: &Starter, uid: &str) -> (HashMap<String, cri::Container>, usize) {
    let labels = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let sandboxes = starter
        .cri()
        .list_pod_sandboxes(labels.clone())
        .await
        .unwrap();
    let mut newest: HashMap<String, cri::Container> = HashMap::new();
    for c in starter.cri().list_containers(None, labels).await.unwrap() {
        let name = c.metadata.as_ref().unwrap().name.clone();
        let attempt = c.metadata.as_ref().unwrap().attempt;
        if newest
            .get(&name)
            .is_none_or(|n| n.metadata.as_ref().unwrap().attempt < attempt)
        {
            newest.insert(name, c);
        }
    }
    (newest, sandboxes.len())
}

/// Polls until `done` holds of the pod's newest containers (at most 30 s:
/// a condition never met is a failure, not a hang).
async fn until(
    starter: &Starter,
    uid: &str,
    what: &str,
    done: impl Fn(&HashMap<String, cri::Container>) -> bool,
) -> (HashMap<String, cri::Container>, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = newest_by_name(starter, uid).await;
        if done(&found.0) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {:#?}",
            found.0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(c: &cri::Container) -> cri::ContainerState {
    cri::ContainerState::try_from(c.state).unwrap()
}

fn attempt(c: &cri::Container) -> u32 {
    c.metadata.as_ref().unwrap().attempt
}

/// The `PodRecovered` events of `uid` the feed received so far.
fn recovered_events(feed: &mut broadcast::Receiver<StartEvent>, uid: &str) -> Vec<StartEvent> {
    let mut found = Vec::new();
    while let Ok(e) = feed.try_recv() {
        if e.pod_uid == uid && e.reason == "PodRecovered" {
            found.push(e);
        }
    }
    found
}

#[tokio::test]
async fn a_crashed_container_is_restarted_by_the_next_podstart() {
    let h = Harness::new().await;
    let spec = pod(
        "crashy",
        "rec-u1",
        vec![container("steady"), exiting("crashy", 1, 300)],
    );
    let events = h.start(request(spec)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:#?}"
    );
    // podstart goes away: nothing supervises the pod any more.
    h.starter.cancel_all();
    let (found, _) = until(&h.starter, "rec-u1", "crashed", |n| {
        n.get("crashy")
            .is_some_and(|c| state(c) == cri::ContainerState::ContainerExited)
    })
    .await;
    let crashed = attempt(&found["crashy"]);

    let next = h.restarted_starter();
    let mut feed = next.subscribe();
    let recovered = next.recover().await.unwrap();
    assert_eq!(
        recovered,
        Recovered {
            supervised: 1,
            ..Default::default()
        }
    );
    let (found, sandboxes) = until(&next, "rec-u1", "restarted", |n| {
        n.get("crashy").is_some_and(|c| attempt(c) > crashed)
    })
    .await;
    assert_eq!(sandboxes, 1);
    assert_eq!(
        attempt(&found["steady"]),
        0,
        "the running container is kept"
    );
    let report = recovered_events(&mut feed, "rec-u1");
    assert_eq!(report.len(), 1, "{report:#?}");
    assert!(
        report[0].message.contains("resumed its supervision"),
        "{report:#?}"
    );
    next.cancel_all();
}

#[tokio::test]
async fn a_half_started_pod_is_finished_by_the_next_podstart() {
    let h = Harness::new().await;
    // The first podstart never hears back from StartContainer: its start
    // stops with the first container created, not started.
    h.sim.faults().set(
        "StartContainer",
        Fault {
            hang: true,
            ..Default::default()
        },
    );
    let mut spec = request(pod(
        "half",
        "rec-u2",
        vec![container("a"), container("b"), container("c")],
    ));
    spec.options = Some(StartOptions {
        app_start: AppStartMode::Sequential as i32,
        ..Default::default()
    });
    let first = {
        let client = h.client.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let mut stream = client.clone().start_pod(spec).await.unwrap().into_inner();
            while let Ok(Some(_)) = stream.message().await {}
        })
    };
    until(&h.starter, "rec-u2", "created", |n| n.contains_key("a")).await;
    h.until_hung("StartContainer", 1).await;
    // The first podstart is gone.
    h.starter.cancel_all();
    first.abort();
    h.sim.faults().clear_all();

    let next = h.restarted_starter();
    let mut feed = next.subscribe();
    let recovered = next.recover().await.unwrap();
    assert_eq!(
        recovered,
        Recovered {
            started: 1,
            ..Default::default()
        }
    );
    let (found, sandboxes) = newest_by_name(&next, "rec-u2").await;
    assert_eq!(sandboxes, 1);
    for name in ["a", "b", "c"] {
        assert_eq!(
            found.get(name).map(state),
            Some(cri::ContainerState::ContainerRunning),
            "{name}: {found:#?}"
        );
    }
    let report = recovered_events(&mut feed, "rec-u2");
    assert_eq!(report.len(), 1, "{report:#?}");
    // b and c were made ahead of their turns while a started.
    assert!(
        report[0].message.contains("a created, not started")
            && report[0].message.contains("b created, not started")
            && report[0].message.contains("c created, not started"),
        "{report:#?}"
    );
    next.cancel_all();
}

#[tokio::test]
async fn a_pod_whose_sandbox_is_not_ready_gets_a_new_one() {
    // As the kubelet does with a sandbox that is not ready: it is removed,
    // and the pod started in a new one.
    let h = Harness::new().await;
    let events = h
        .start(request(pod("dead", "rec-u3", vec![container("a")])))
        .await
        .unwrap();
    let Payload::PodStarted(started) = terminal(&events) else {
        panic!("{events:#?}");
    };
    h.starter.cancel_all();
    h.starter
        .cri()
        .stop_pod_sandbox(&started.sandbox_id)
        .await
        .unwrap();

    let next = h.restarted_starter();
    let recovered = next.recover().await.unwrap();
    assert_eq!(
        recovered,
        Recovered {
            started: 1,
            ..Default::default()
        }
    );
    let labels = HashMap::from([("io.kubernetes.pod.uid".to_string(), "rec-u3".to_string())]);
    let sandboxes = next.cri().list_pod_sandboxes(labels).await.unwrap();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:#?}");
    assert_ne!(sandboxes[0].id, started.sandbox_id);
    assert_eq!(
        sandboxes[0].state,
        cri::PodSandboxState::SandboxReady as i32
    );
    let (found, _) = newest_by_name(&next, "rec-u3").await;
    assert_eq!(
        found.get("a").map(state),
        Some(cri::ContainerState::ContainerRunning)
    );
    next.cancel_all();
}

#[tokio::test]
async fn a_sandbox_without_a_stored_request_is_left_alone() {
    // As an older podstart made it: podstart's labels, no stored request.
    let h = Harness::new().await;
    let spec = pod("old", "rec-u4", vec![container("a")]);
    let config = podstart::spec::pod_sandbox_config(&spec, &h.log_root.join("old"));
    let id = h.starter.cri().run_pod_sandbox(config, "").await.unwrap();

    let next = h.restarted_starter();
    let recovered = next.recover().await.unwrap();
    assert_eq!(
        recovered,
        Recovered {
            left: 1,
            ..Default::default()
        }
    );
    let (found, sandboxes) = newest_by_name(&next, "rec-u4").await;
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(sandboxes, 1);
    let status = next.cri().pod_sandbox_status(&id).await.unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
}

#[tokio::test]
async fn another_podstart_s_pods_are_not_taken_up() {
    // Another podstart on the same runtime (another pod state root) leaves
    // this one's pods to it.
    let h = Harness::new().await;
    let events = h
        .start(request(pod("mine", "rec-u5", vec![container("a")])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let other_root = tempfile::tempdir().unwrap();
    let other = h.restarted_starter_with(|c| c.pod_state_root = other_root.path().to_path_buf());
    assert_eq!(other.recover().await.unwrap(), Recovered::default());
    // Its own instance, restarted, does take it up.
    h.starter.cancel_all();
    let next = h.restarted_starter();
    assert_eq!(next.recover().await.unwrap().supervised, 1);
    next.cancel_all();
}

#[tokio::test]
async fn a_start_sent_during_recovery_waits_for_it_and_makes_nothing_twice() {
    let h = Harness::new().await;
    h.sim.faults().set(
        "StartContainer",
        Fault {
            hang: true,
            ..Default::default()
        },
    );
    let mut spec = request(pod(
        "raced",
        "rec-u6",
        vec![container("a"), container("b"), container("c")],
    ));
    // All three are created at once, and none starts.
    spec.options = Some(StartOptions {
        app_start: AppStartMode::Parallel as i32,
        ..Default::default()
    });
    let first = {
        let (client, spec) = (h.client.clone(), spec.clone());
        tokio::spawn(async move {
            let mut stream = client.clone().start_pod(spec).await.unwrap().into_inner();
            while let Ok(Some(_)) = stream.message().await {}
        })
    };
    until(&h.starter, "rec-u6", "created", |n| n.len() == 3).await;
    h.until_hung("StartContainer", 3).await;
    h.starter.cancel_all();
    first.abort();
    h.sim.faults().clear_all();

    // The restarted podstart recovers the pod while a caller re-sends its
    // StartPod: one of them does the work under the pod's lock, the other
    // finds it done.
    let next = h.restarted_starter();
    let meta = spec.pod.as_ref().unwrap().metadata.clone().unwrap();
    let (sink, stream) =
        podstart::start::EventSink::for_caller(&meta, next.bus(), 128, h.metrics.clone());
    let collect = async {
        let events: Vec<StartEvent> = tokio_stream::StreamExt::collect::<Vec<_>>(stream)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        events
    };
    let (recovered, (), events) =
        tokio::join!(next.recover(), next.start_pod(spec, sink, None), collect);
    let recovered = recovered.unwrap();
    assert_eq!(recovered.started + recovered.taken_over, 1, "{recovered:?}");
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:#?}"
    );
    let labels = HashMap::from([("io.kubernetes.pod.uid".to_string(), "rec-u6".to_string())]);
    let all = next.cri().list_containers(None, labels).await.unwrap();
    let running = cri::ContainerState::ContainerRunning as i32;
    for name in ["a", "b", "c"] {
        let instances: Vec<_> = all
            .iter()
            .filter(|c| c.metadata.as_ref().unwrap().name == name)
            .collect();
        assert_eq!(instances.len(), 1, "{name}: {instances:#?}");
        assert_eq!(instances[0].state, running, "{name}: {instances:#?}");
    }
    assert_eq!(newest_by_name(&next, "rec-u6").await.1, 1);
    next.cancel_all();
}

#[tokio::test]
async fn a_stop_cut_short_is_finished_not_undone() {
    let h = Harness::new().await;
    let spec = pod("stopping", "rec-stop", vec![container("app")]);
    let events = h.start(request(spec)).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    // podstart goes away in the middle of a StopPod: the stop had marked
    // the pod and stopped its container, the sandbox was still there.
    h.starter.cancel_all();
    let state_dir = h.starter.config().pod_state_root.join("rec-stop");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(state_dir.join("stopping"), b"").unwrap();
    let (found, _) = newest_by_name(&h.starter, "rec-stop").await;
    h.starter
        .cri()
        .stop_container(&found["app"].id, Duration::ZERO)
        .await
        .unwrap();

    let next = h.restarted_starter();
    let mut feed = next.subscribe();
    let recovered = next.recover().await.unwrap();
    assert_eq!(
        recovered,
        Recovered {
            left: 1,
            ..Default::default()
        }
    );
    let (left, sandboxes) = newest_by_name(&next, "rec-stop").await;
    assert_eq!(
        (left.len(), sandboxes),
        (0, 0),
        "the stop was finished: {left:#?}"
    );
    assert!(!state_dir.exists(), "the pod's state directory is gone");
    let report = recovered_events(&mut feed, "rec-stop");
    assert_eq!(report.len(), 1, "{report:#?}");
    assert!(report[0].message.contains("stop unfinished"), "{report:#?}");
    next.cancel_all();
}
