//! The CRI calls one StartPod makes: what a hand-written client needs, and
//! no look-up more when nothing of the pod exists yet.
use std::{collections::BTreeMap, time::Duration};

use podstart::pleg::PlegConfig;
use podstart::proto::v1::start_event::Payload;

use crate::common::{Harness, container, exiting, pod, request, terminal};

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
            ("ListPodSandbox", 2),
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
            ("ListPodSandbox", 2),
            ("PodSandboxStatus", 1),
            ("RunPodSandbox", 1),
            ("StartContainer", 3),
        ])
    );
}
