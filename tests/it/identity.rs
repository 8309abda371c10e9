//! A pod uid identifies one pod: a StartPod whose uid is another
//! namespace/name's, or whose namespace/name runs under another uid, is
//! refused with ALREADY_EXISTS naming both, before anything is created —
//! whether the other pod runs on the node (found through CRI labels, so
//! this holds after a restart) or is still starting.
use std::time::Duration;

use podstart::proto::v1::{PodSpec, StartEvent, start_event::Payload};
use podstart::sim::Fault;
use tonic::Code;

use crate::common::{Harness, container, pod, reasons, request, terminal};
use crate::direct;

fn named(namespace: &str, name: &str, uid: &str) -> PodSpec {
    let mut p = pod(name, uid, vec![container("app")]);
    if let Some(m) = p.metadata.as_mut() {
        m.namespace = namespace.into();
    }
    p
}

fn started(events: &[StartEvent]) {
    assert!(
        matches!(terminal(events), Payload::PodStarted(_)),
        "{:?}",
        reasons(events)
    );
}

/// The refusal's message, after checking its code, reason and step.
fn refused(events: &[StartEvent]) -> String {
    match terminal(events) {
        Payload::PodFailed(f) => {
            assert_eq!(Code::from(f.code), Code::AlreadyExists, "{f:?}");
            assert_eq!(f.reason, "PodIdentityConflict");
            assert_eq!(events.len(), 1, "nothing happened before: {events:?}");
            f.message.clone()
        }
        other => panic!("expected PodFailed, got {other:?}"),
    }
}

/// How many creating calls the runtime has seen.
fn creates(h: &Harness) -> [u64; 4] {
    [
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "PullImage",
    ]
    .map(|op| h.sim.calls(op))
}

const UID_TAKEN: &str = r#"pod uid "u1" is already pod "ns-a/web"; this request names "ns-b/api""#;
const NAME_TAKEN: &str =
    r#"pod "ns-a/web" is already pod uid "u1"; this request gives uid "u2" (stop that pod first)"#;

#[tokio::test]
async fn a_uid_under_another_name_is_refused() {
    let h = Harness::new().await;
    started(&h.start(request(named("ns-a", "web", "u1"))).await.unwrap());
    let before = creates(&h);

    let events = h.start(request(named("ns-b", "api", "u1"))).await.unwrap();
    assert_eq!(refused(&events), UID_TAKEN);
    assert_eq!(creates(&h), before, "nothing created");
    // The first pod is untouched, and starting it again is fine.
    assert_eq!(h.sim.sandbox_count(), 1);
    assert_eq!(h.sim.container_count(), 1);
    started(&h.start(request(named("ns-a", "web", "u1"))).await.unwrap());
    assert_eq!(h.sim.container_count(), 1);
}

#[tokio::test]
async fn a_name_under_a_new_uid_is_refused_until_the_old_pod_stops() {
    let h = Harness::new().await;
    started(&h.start(request(named("ns-a", "web", "u1"))).await.unwrap());
    let before = creates(&h);

    let events = h.start(request(named("ns-a", "web", "u2"))).await.unwrap();
    assert_eq!(refused(&events), NAME_TAKEN);
    assert_eq!(creates(&h), before, "nothing created");

    // Stopped, the name is free for a new uid, and the old uid for a new name.
    h.stop("u1").await.unwrap();
    started(&h.start(request(named("ns-a", "web", "u2"))).await.unwrap());
    started(&h.start(request(named("ns-b", "api", "u1"))).await.unwrap());
    assert_eq!(h.sim.sandbox_count(), 2);
}

#[tokio::test]
async fn a_start_in_flight_holds_its_identity() {
    let h = Harness::new().await;
    // The first start waits in RunPodSandbox: nothing on the node names
    // the pod yet.
    h.sim.faults().set(
        "RunPodSandbox",
        Fault {
            latency: Duration::from_millis(2000),
            ..Default::default()
        },
    );
    let first = {
        let h_client = h.client.clone();
        tokio::spawn(async move {
            let stream = h_client
                .clone()
                .start_pod(request(named("ns-a", "web", "u1")))
                .await
                .unwrap()
                .into_inner();
            crate::common::collect(stream).await
        })
    };
    // The first start claims its identity at once, then waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.sim.sandbox_count(), 0, "still in RunPodSandbox");

    let events = h.start(request(named("ns-b", "api", "u1"))).await.unwrap();
    assert_eq!(refused(&events), UID_TAKEN);
    let events = h.start(request(named("ns-a", "web", "u2"))).await.unwrap();
    assert_eq!(refused(&events), NAME_TAKEN);
    assert_eq!(h.sim.sandbox_count(), 0, "refused from the claim alone");
    started(&first.await.unwrap());
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);
}

#[tokio::test]
async fn after_a_restart_the_node_still_knows_its_pods() {
    let h = Harness::new().await;
    started(&h.start(request(named("ns-a", "web", "u1"))).await.unwrap());
    let before = creates(&h);

    // A podstart with no memory of the start, on the same runtime.
    let dir = tempfile::tempdir().unwrap();
    let restarted = direct::starter(&h, &dir.path().join("state"), &dir.path().join("pods"));
    let events = direct::start(&restarted, named("ns-b", "api", "u1")).await;
    assert_eq!(refused(&events), UID_TAKEN);
    let events = direct::start(&restarted, named("ns-a", "web", "u2")).await;
    assert_eq!(refused(&events), NAME_TAKEN);
    assert_eq!(creates(&h), before, "nothing created");
}
