//! What podstart decides from the node and the pod's own fields: the stop
//! order of sidecars, env vars read from the pod's fields, and the node's
//! admission of what a pod requests.

use std::time::Duration;

use crate::common::*;
use podstart::proto::v1::{ContainerRestartPolicy, start_event::Payload};

fn sidecar(name: &str) -> podstart::proto::v1::Container {
    let mut c = container(name);
    c.set_restart_policy(ContainerRestartPolicy::Always);
    c
}

#[tokio::test]
async fn app_containers_stop_first_then_sidecars_in_reverse_declaration_order() {
    // Each call takes a while, so containers stopped together would finish
    // in any order.
    let h = Harness::with_sim(|s| s.latency = Duration::from_millis(15), |_| {}).await;
    let mut p = pod("web", "u-order", vec![container("a1"), container("a2")]);
    p.init_containers = vec![sidecar("s1"), sidecar("s2"), sidecar("s3")];
    let events = h.start(request(p)).await.unwrap();
    let Payload::PodStarted(started) = terminal(&events) else {
        panic!("{:?}", reasons(&events));
    };
    let name_of = |id: &String| {
        started
            .containers
            .iter()
            .find(|c| &c.container_id == id)
            .map(|c| c.name.clone())
            .unwrap()
    };
    let events = h.stop("u-order").await.unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStopped(_)),
        "{:?}",
        reasons(&events)
    );
    let names: Vec<String> = h.sim.stops().iter().map(name_of).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let mut apps = names[..2].to_vec();
    apps.sort();
    assert_eq!(apps, ["a1", "a2"], "{names:?}");
    assert_eq!(names[2..], ["s3", "s2", "s1"], "{names:?}");
}
