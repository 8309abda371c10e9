//! App containers made ahead of their turn: created while the init
//! containers run, reported and started at their turn in the kubelet's
//! order, removed when their turn never comes.
use std::time::Duration;

use podstart::proto::v1::{RestartPolicy, start_event::Payload};

use crate::common::{Harness, container, exiting, pod, reasons, request, seq, terminal};

/// Starts `spec` in a task that collects its events.
fn spawn_start(
    h: &Harness,
    spec: podstart::proto::v1::PodSpec,
) -> tokio::task::JoinHandle<Vec<podstart::proto::v1::StartEvent>> {
    let mut client = h.client.clone();
    tokio::spawn(async move {
        let stream = client.start_pod(request(spec)).await.unwrap().into_inner();
        crate::common::collect(stream).await
    })
}

/// Waits until the runtime has seen `n` CreateContainer calls (at most 30 s).
async fn until_created(h: &Harness, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.sim.calls("CreateContainer") < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} creates",
            h.sim.calls("CreateContainer")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn app_containers_are_created_while_the_init_runs_and_reported_at_their_turn() {
    let h = Harness::new().await;
    let mut spec = pod("ahead-1", "ahead-u1", vec![container("a"), container("b")]);
    // Runs long enough for the app containers to be made meanwhile.
    spec.init_containers = vec![exiting("init", 0, 1500)];
    let start = spawn_start(&h, spec);
    // The init's create and both app containers', before the init exits.
    until_created(&h, 3).await;
    assert_eq!(h.sim.calls("StartContainer"), 1, "only the init started");
    let events = start.await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:?}"
    );
    assert_eq!(h.sim.calls("CreateContainer"), 3, "nothing made twice");
    assert_eq!(h.sim.calls("RemoveContainer"), 0);
    // The kubelet's order of events, whatever was done ahead.
    assert_eq!(
        reasons(&events),
        seq(&[
            ("pod", "SandboxCreated"),
            ("init", "Pulled"),
            ("init", "Created"),
            ("init", "Started"),
            ("init", "Completed"),
            ("a", "Pulled"),
            ("a", "Created"),
            ("a", "Started"),
            ("b", "Pulled"),
            ("b", "Created"),
            ("b", "Started"),
            ("pod", "PodStarted"),
        ])
    );
    h.stop("ahead-u1").await.unwrap();
}

#[tokio::test]
async fn containers_made_for_a_turn_that_never_comes_are_removed() {
    let h = Harness::new().await;
    let mut spec = pod("ahead-2", "ahead-u2", vec![container("a"), container("b")]);
    spec.set_restart_policy(RestartPolicy::Never);
    spec.init_containers = vec![exiting("init", 1, 1500)];
    let start = spawn_start(&h, spec);
    until_created(&h, 3).await;
    let events = start.await.unwrap();
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("{events:?}");
    };
    assert_eq!(failed.reason, "InitContainerFailed", "{failed:?}");
    // The failed init stays (its logs, its status); the two app
    // containers made ahead are gone, never started.
    assert_eq!(h.sim.calls("RemoveContainer"), 2);
    assert_eq!(h.sim.container_count(), 1);
    assert_eq!(h.sim.calls("StartContainer"), 1);
    h.stop("ahead-u2").await.unwrap();
}
