//! The node's container watcher (`pleg/`) against the simulated runtime: a
//! lost event stream is reopened and the node relisted, so an exit that
//! happened while it was down still reaches the pod's supervisor; without
//! events, one relist of the node serves every waiter.
use std::time::{Duration, Instant};

use futures::StreamExt;
use podstart::pleg::Source;
use podstart::proto::v1::{WatchEventsRequest, start_event::Payload};

use crate::common::{Harness, container, exiting, pod, request, terminal};

/// Waits on the feed for `reason` of container `name` in pod `uid`.
async fn wait_for(
    feed: &mut tonic::Streaming<podstart::proto::v1::StartEvent>,
    uid: &str,
    name: &str,
    reason: &str,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(500), feed.next()).await
            && e.pod_uid == uid
            && e.container_name == name
            && e.reason == reason
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn an_exit_while_the_event_stream_is_down_is_still_restarted() {
    let h = Harness::new().await;
    assert_eq!(h.starter.pleg().synced().await, Source::Cri);
    let mut feed = h
        .client
        .clone()
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Runs 600 ms, exits 1, is restarted (restartPolicy Always).
    let p = pod("lost", "uid-lost", vec![exiting("crash", 1, 600)]);
    let events = h.start(request(p)).await.unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let streams_before = h.sim.calls("GetContainerEvents");

    // The runtime goes away before the exit and comes back after it: the
    // exit event is never sent to podstart.
    h.runtime_down_for(Duration::from_millis(1200)).await;
    assert!(
        wait_for(&mut feed, "uid-lost", "crash", "Error").await,
        "the exit is seen after the stream is back"
    );
    assert!(
        wait_for(&mut feed, "uid-lost", "crash", "Started").await,
        "and the container restarted"
    );
    // Relisting bridged the gap; the stream is reopened within a second
    // of the runtime's return.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.sim.event_streams().0 == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.sim.calls("GetContainerEvents") > streams_before,
        "the stream was reopened"
    );
    assert_eq!(h.sim.event_streams().0, 1, "one stream open again");
}

#[tokio::test]
async fn without_events_one_relist_of_the_node_serves_every_pod() {
    let h = Harness::with_sim(|s| s.no_container_events = true, |_| {}).await;
    assert_eq!(h.starter.pleg().synced().await, Source::Relist);
    for i in 0..20 {
        let p = pod(
            &format!("r{i}"),
            &format!("uid-r{i}"),
            vec![container("app")],
        );
        let events = h.start(request(p)).await.unwrap();
        assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    }
    // Twenty supervised pods at rest for a second: the harness relists the
    // node every 20 ms, and nothing else is asked.
    let (lists, statuses) = (
        h.sim.calls("ListContainers"),
        h.sim.calls("ContainerStatus"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lists = h.sim.calls("ListContainers") - lists;
    assert!(
        (3..=60).contains(&lists),
        "{lists} ListContainers in 1 s: one per relist period, not one per pod"
    );
    assert_eq!(h.sim.calls("ContainerStatus"), statuses, "no status polls");
}
