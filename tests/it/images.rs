//! Images against the simulated runtime: one pull however many pods want
//! an image, the node-wide parallel limit, pull back-off under a paused
//! clock, pre-pull during init containers, heartbeats, and what a failed
//! pull is called. Credentials have their own file (`image_secrets.rs`).

use std::time::Duration;

use crate::common::*;
use podstart::proto::v1::{
    ContainerKind, PullPolicy, StartEvent, StartOptions, start_event::Payload,
};
use podstart::sim::SimConfig;

fn image_container(name: &str, image: &str) -> podstart::proto::v1::Container {
    let mut c = container(name);
    c.image = image.to_string();
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    c
}

fn failure(events: &[StartEvent]) -> (String, i32, String) {
    match terminal(events) {
        Payload::PodFailed(f) => (f.reason.clone(), f.code, f.message.clone()),
        other => panic!("expected PodFailed, got {other:?}"),
    }
}

fn slow_pulls(delay_ms: u64) -> SimConfig {
    SimConfig {
        pull_delay: Duration::from_millis(delay_ms),
        ..Default::default()
    }
}

#[tokio::test]
async fn ten_pods_needing_one_image_share_one_pull() {
    let h = Harness::with_sim_config(slow_pulls(300), |_| {}).await;
    let starts = (0..10).map(|i| {
        let p = pod(
            &format!("web-{i}"),
            &format!("uid-shared-{i}"),
            vec![image_container("app", "registry.test/shared/app:1")],
        );
        h.start(request(p))
    });
    let all = futures::future::join_all(starts).await;
    assert_eq!(h.sim.calls("PullImage"), 1, "one pull for ten pods");
    for events in all {
        let events = events.unwrap();
        assert!(
            matches!(terminal(&events), Payload::PodStarted(_)),
            "{:?}",
            reasons(&events)
        );
        // Every waiter tells its own story.
        let own: Vec<&str> = events
            .iter()
            .filter(|e| e.container_name == "app")
            .map(|e| e.reason.as_str())
            .filter(|r| *r != "PullProgress")
            .collect();
        assert_eq!(own, vec!["Pulling", "Pulled", "Created", "Started"]);
        let pulled = events.iter().find(|e| e.reason == "Pulled").unwrap();
        assert!(
            pulled
                .message
                .contains("including waiting). Image size: 1048576 bytes."),
            "{}",
            pulled.message
        );
    }
}

#[tokio::test]
async fn the_parallel_limit_is_never_exceeded() {
    for limit in [1usize, 2] {
        let h = Harness::with_sim_config(slow_pulls(100), |f| f.puller.max_parallel = limit).await;
        let starts = (0..6).map(|i| {
            let p = pod(
                &format!("p-{i}"),
                &format!("uid-limit-{limit}-{i}"),
                vec![image_container(
                    "app",
                    &format!("registry.test/limit/app-{i}:1"),
                )],
            );
            h.start(request(p))
        });
        for events in futures::future::join_all(starts).await {
            assert!(matches!(terminal(&events.unwrap()), Payload::PodStarted(_)));
        }
        assert_eq!(h.sim.calls("PullImage"), 6);
        assert_eq!(h.sim.max_concurrent_pulls(), limit as u64, "limit {limit}");
    }
    // No limit: all six at once.
    let h = Harness::with_sim_config(slow_pulls(200), |_| {}).await;
    let p = pod(
        "many",
        "uid-unlimited",
        (0..6)
            .map(|i| image_container(&format!("c{i}"), &format!("registry.test/free/app-{i}:1")))
            .collect(),
    );
    h.start(request(p)).await.unwrap();
    assert_eq!(
        h.sim.max_concurrent_pulls(),
        6,
        "pre-pull starts every image at once"
    );
}

#[tokio::test(start_paused = true)]
async fn pull_backoff_events_and_timing_under_a_paused_clock() {
    let h = Harness::with(|f| {
        f.image_pull_backoff = Duration::from_secs(10);
        f.image_pull_backoff_max = Duration::from_secs(300);
    })
    .await;
    let req = || {
        request(pod(
            "private",
            "uid-backoff",
            vec![image_container("app", "registry.test/needs-auth/app:1")],
        ))
    };
    let advance = |secs| tokio::time::advance(Duration::from_secs(secs));

    // 1st: the pull fails with the auth reason.
    let events = h.start(req()).await.unwrap();
    let (reason, code, message) = failure(&events);
    assert_eq!(reason, "ErrImagePullUnauthorized");
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert_eq!(h.sim.calls("PullImage"), 1);

    // Within 10 s: BackOff, no pull.
    advance(9).await;
    let events = h.start(req()).await.unwrap();
    let backoff = events.iter().find(|e| e.reason == "BackOff").unwrap();
    assert!(
        backoff.message.starts_with(
            "Back-off pulling image \"registry.test/needs-auth/app:1\": Failed to pull image"
        ),
        "{}",
        backoff.message
    );
    assert_eq!(failure(&events).0, "ImagePullBackOff");
    assert_eq!(h.sim.calls("PullImage"), 1);

    // After 10 s: pulls again, fails, and the back-off doubles to 20 s.
    advance(1).await;
    let events = h.start(req()).await.unwrap();
    assert_eq!(failure(&events).0, "ErrImagePullUnauthorized");
    assert_eq!(h.sim.calls("PullImage"), 2);
    advance(19).await;
    assert_eq!(
        failure(&h.start(req()).await.unwrap()).0,
        "ImagePullBackOff"
    );
    assert_eq!(h.sim.calls("PullImage"), 2);
    advance(1).await;
    assert_eq!(
        failure(&h.start(req()).await.unwrap()).0,
        "ErrImagePullUnauthorized"
    );
    assert_eq!(h.sim.calls("PullImage"), 3);

    // Another pod is not held back by this pod's back-off.
    let other = request(pod(
        "other",
        "uid-backoff-other",
        vec![image_container("app", "registry.test/needs-auth/app:1")],
    ));
    assert_eq!(
        failure(&h.start(other).await.unwrap()).0,
        "ErrImagePullUnauthorized"
    );
    assert_eq!(h.sim.calls("PullImage"), 4);
}

#[tokio::test]
async fn unreachable_registry_is_registry_unavailable() {
    let h = Harness::new().await;
    let p = pod(
        "down",
        "uid-down",
        vec![image_container("app", "10.0.0.1:5000/registry-down/app:1")],
    );
    let events = h.start(request(p)).await.unwrap();
    assert_eq!(failure(&events).0, "RegistryUnavailable");
}

#[tokio::test]
async fn pre_pull_fetches_app_images_while_init_containers_run() {
    let h = Harness::with_sim_config(slow_pulls(150), |_| {}).await;
    let mut p = pod(
        "prepull",
        "uid-prepull",
        vec![
            image_container("one", "registry.test/pre/one:1"),
            image_container("two", "registry.test/pre/two:1"),
        ],
    );
    p.init_containers = vec![exiting("init", 0, 400)];
    let began = std::time::Instant::now();
    let events = h.start(request(p)).await.unwrap();
    let took = began.elapsed();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let at = |who: &str, reason: &str| {
        events
            .iter()
            .position(|e| e.container_name == who && e.reason == reason)
            .unwrap_or_else(|| panic!("{who} {reason}: {:?}", reasons(&events)))
    };
    // Both app images arrived while the init container ran...
    assert!(at("one", "Pulled") < at("init", "Completed"));
    assert!(at("two", "Pulled") < at("init", "Completed"));
    // ...and the start order did not change.
    assert!(at("init", "Started") < at("one", "Started"));
    assert!(at("one", "Started") < at("two", "Started"));
    assert!(took < Duration::from_millis(400 + 2 * 150), "{took:?}");

    // Without pre-pull, the kubelet's order: each pull at its turn.
    let mut p = pod(
        "kubelet",
        "uid-no-prepull",
        vec![image_container("one", "registry.test/pre/three:1")],
    );
    p.init_containers = vec![exiting("init", 0, 100)];
    let mut req = request(p);
    req.options = Some(StartOptions {
        no_pre_pull: true,
        ..Default::default()
    });
    let events = h.start(req).await.unwrap();
    let completed = events.iter().position(|e| e.reason == "Completed").unwrap();
    let pulling = events.iter().position(|e| e.reason == "Pulling").unwrap();
    assert!(completed < pulling);
}

#[tokio::test]
async fn slow_pulls_send_heartbeats_when_the_runtime_has_no_progress() {
    let h = Harness::with_sim_config(slow_pulls(2300), |f| {
        f.puller.sample_interval = Duration::from_millis(100);
    })
    .await;
    let p = pod(
        "slow",
        "uid-slow",
        vec![image_container("app", "registry.test/slow/app:1")],
    );
    let events = h.start(request(p)).await.unwrap();
    let beats: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::PullProgress(p)) => Some((e, p)),
            _ => None,
        })
        .collect();
    // About one a second (heartbeats are not measured progress).
    assert!((1..=3).contains(&beats.len()), "{}", beats.len());
    for (e, p) in &beats {
        assert_eq!(e.container_kind(), ContainerKind::App);
        assert_eq!(p.image, "registry.test/slow/app:1");
        assert_eq!(p.source(), podstart::proto::v1::ProgressSource::Heartbeat);
        assert!(p.elapsed_micros >= 900_000);
    }
    // A request can opt out.
    let mut req = request(pod(
        "quiet",
        "uid-quiet",
        vec![image_container("app", "registry.test/slow/quiet:1")],
    ));
    req.options = Some(StartOptions {
        no_pull_progress: true,
        ..Default::default()
    });
    let events = h.start(req).await.unwrap();
    assert!(!events.iter().any(|e| e.reason == "PullProgress"));
}
