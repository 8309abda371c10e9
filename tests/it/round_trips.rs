//! The CRI calls one StartPod makes: what a hand-written client needs, and
//! no look-up more when nothing of the pod exists yet (the node's sandbox
//! index, filled by recovery, says so); look-ups again when it may.
use std::{collections::BTreeMap, time::Duration};

use podstart::pleg::PlegConfig;
use podstart::proto::v1::start_event::Payload;

use crate::common::{Harness, container, exiting, pod, reasons, request, terminal};
use crate::direct;

const METHODS: &[&str] = &[
    "ContainerStatus",
    "CreateContainer",
    "ExecSync",
    "ImageStatus",
    "ListContainers",
    "ListImages",
    "ListPodSandbox",
    "PodSandboxStatus",
    "PullImage",
    "RemoveContainer",
    "RunPodSandbox",
    "StartContainer",
    "StopContainer",
    "StopPodSandbox",
];

async fn quiet() -> Harness {
    let h = Harness::with(|t| {
        // Exits come as the runtime's events; one relist at start, none
        // while the pod starts: every call counted is the request's.
        t.pleg = PlegConfig {
            relist_period: Duration::from_secs(3600),
            events_relist_period: Duration::from_secs(3600),
            ..PlegConfig::default()
        };
    })
    .await;
    h.starter.pleg().synced().await;
    h
}

fn counts(h: &Harness) -> BTreeMap<&'static str, u64> {
    METHODS
        .iter()
        .map(|m| (*m, h.sim.calls(m)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn delta(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(m, n)| (*m, n - before.get(m).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn a_new_one_container_pod_costs_its_calls_and_no_more() {
    let h = quiet().await;
    let before = counts(&h);
    let events = h
        .start(request(pod("rt-1", "rt-u1", vec![container("app")])))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:?}"
    );
    let made = delta(&before, &counts(&h));
    eprintln!("one container: {made:?}");
    assert_eq!(
        made,
        BTreeMap::from([
            ("CreateContainer", 1),
            ("ImageStatus", 1),
            ("PodSandboxStatus", 1),
            ("RunPodSandbox", 1),
            ("StartContainer", 1),
        ])
    );
}

#[tokio::test]
async fn an_init_and_two_app_containers_share_one_image_look_up() {
    let h = quiet().await;
    let before = counts(&h);
    let mut spec = pod("rt-2", "rt-u2", vec![container("a"), container("b")]);
    spec.init_containers = vec![exiting("init", 0, 10)];
    let events = h.start(request(spec)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:?}"
    );
    let made = delta(&before, &counts(&h));
    eprintln!("init + two app: {made:?}");
    assert_eq!(
        made,
        BTreeMap::from([
            // The init's: one read after its start (it may be done
            // already), one when the watcher reports its exit (the CRI's
            // events carry no exit code; containerd's TaskExit does).
            ("ContainerStatus", 2),
            ("CreateContainer", 3),
            ("ImageStatus", 1),
            ("PodSandboxStatus", 1),
            ("RunPodSandbox", 1),
            ("StartContainer", 3),
        ])
    );
}

#[tokio::test]
async fn a_pod_the_node_has_seen_is_looked_up_again() {
    let h = quiet().await;
    let spec = pod("rt-3", "rt-u3", vec![container("app")]);
    let events = h.start(request(spec.clone())).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    // The same pod again: its sandbox is on the node, so the identity
    // look-ups run and the sandbox is adopted.
    let before = counts(&h);
    let events = h.start(request(spec)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(p) if p.already_running),
        "{events:?}"
    );
    let made = delta(&before, &counts(&h));
    assert_eq!(made.get("ListPodSandbox"), Some(&2), "{made:?}");
    assert_eq!(made.get("RunPodSandbox"), None, "{made:?}");

    // Stopped, it is gone from the node: a new start needs no look-up.
    h.stop("rt-u3").await.unwrap();
    let before = counts(&h);
    let events = h
        .start(request(pod("rt-3", "rt-u3", vec![container("app")])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let made = delta(&before, &counts(&h));
    assert_eq!(made.get("ListPodSandbox"), None, "{made:?}");
    assert_eq!(made.get("RunPodSandbox"), Some(&1), "{made:?}");
}

#[tokio::test]
async fn a_sandbox_another_process_made_is_found_by_its_name_and_adopted() {
    let h = quiet().await;
    let dir = tempfile::tempdir().unwrap();
    // A second podstart on the same runtime, after this one filled its
    // index: this one does not know the pod.
    let other = direct::starter(&h, &dir.path().join("state"), &dir.path().join("pods"));
    let spec = pod("rt-4", "rt-u4", vec![container("app")]);
    let events = direct::start(&other, spec.clone()).await;
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:?}"
    );
    let runs = h.sim.calls("RunPodSandbox");

    let events = h.start(request(spec)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(p) if p.already_running),
        "{events:?}"
    );
    let said = reasons(&events);
    assert!(
        said.contains(&("pod".to_string(), "SandboxReady".to_string())),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|(_, r)| r == "FailedCreatePodSandBox"),
        "{said:?}"
    );
    // One RunPodSandbox refused for the name, then the listing adopted.
    assert_eq!(h.sim.calls("RunPodSandbox"), runs + 1);
    let left = podstart::state::view::sandboxes(
        h.starter.cri(),
        &podstart::state::view::PodFilter {
            uid: Some("rt-u4".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test]
async fn a_pod_whose_sandbox_could_not_be_made_is_not_looked_up_again() {
    let h = quiet().await;
    h.sim.faults().set(
        "RunPodSandbox",
        podstart::sim::Fault {
            error: Some(tonic::Code::InvalidArgument),
            times: Some(1),
            ..Default::default()
        },
    );
    let spec = pod("rt-5", "rt-u5", vec![container("app")]);
    let events = h.start(request(spec.clone())).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodFailed(_)),
        "{events:?}"
    );
    // The failed start cleaned up and left nothing of the uid: the index
    // forgot it, so the next start needs no look-up either.
    let before = counts(&h);
    let events = h.start(request(spec)).await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{events:?}"
    );
    let made = delta(&before, &counts(&h));
    assert_eq!(made.get("ListPodSandbox"), None, "{made:?}");
}
