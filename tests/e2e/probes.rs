//! Probes after the start on a real containerd: a liveness probe that
//! starts failing (its file removed by the container) kills the container
//! and it is restarted; GetPod shows the restart and readiness.
use std::time::{Duration, Instant};

use podstart::proto::v1::{
    ContainerState, ExecAction, GetPodRequest, Handler, PodRef, Probe, StartEvent,
    WatchEventsRequest, handler::Action, start_event::Payload,
};
use tokio_stream::StreamExt;

use super::{Daemon, container, lab, pod, summary, unique};

fn cat(path: &str) -> Probe {
    Probe {
        handler: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["cat".into(), path.into()],
            })),
        }),
        period_seconds: 1,
        failure_threshold: 1,
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_failing_liveness_probe_restarts_the_container() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start_with(
        &lab,
        &["--restart-backoff", "1s", "--restart-backoff-max", "4s"],
        None,
    )
    .await;
    let (name, uid) = unique("liveness");
    let mut feed = d
        .client
        .clone()
        .watch_events(WatchEventsRequest {
            pod_uid: uid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut web = container(
        &lab,
        "web",
        "touch /tmp/healthy; sleep 3; rm -f /tmp/healthy; exec sleep 600",
    );
    web.liveness_probe = Some(cat("/tmp/healthy"));
    web.readiness_probe = Some(cat("/tmp/healthy"));
    let events = d.start_pod(pod(&name, &uid, vec![web])).await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{:#?}",
        summary(&events)
    );

    let mut seen: Vec<StartEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    let restarted = |seen: &[StartEvent]| {
        seen.iter()
            .position(|e| e.reason == "Killing")
            .is_some_and(|k| seen[k..].iter().any(|e| e.reason == "Started"))
    };
    while !restarted(&seen) && Instant::now() < deadline {
        if let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(1), feed.next()).await {
            seen.push(e);
        }
    }
    let text = summary(&seen);
    assert!(restarted(&seen), "{text:#?}");
    assert!(
        text.iter()
            .any(|l| l == "web ContainerReady Container web is ready"),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|l| l
                .starts_with("web Unhealthy Liveness probe failed: command exited with code 1")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|l| l == "web Killing Container web failed liveness probe, will be restarted"),
        "{text:#?}"
    );

    let got = d
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: uid.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let newest = got
        .containers
        .iter()
        .filter(|c| c.name == "web")
        .max_by_key(|c| c.restart_count)
        .expect("web");
    assert!(newest.restart_count >= 1, "{got:#?}");
    assert_eq!(newest.state(), ContainerState::Running, "{got:#?}");
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}
