//! The node's container watcher on a real containerd: 1.6 has no CRI
//! container events, so exits come from containerd's own events service;
//! `--container-events relist` is the kubelet's generic PLEG. The time from
//! an init container's exit (its `finishedAt`) to the flow's `Completed`
//! event is printed for both, for BENCHMARKS.md; the test asserts which
//! source served and that every exit was seen.
use super::{Daemon, container, lab, pod, statuses, unique, wait_for_text};
use podstart::proto::v1::start_event::Payload;

/// Milliseconds from each init container's exit to its Completed event.
async fn exit_to_event_ms(d: &Daemon, inits: usize) -> Vec<f64> {
    let lab = lab().expect("lab");
    let (name, uid) = unique("exitlat");
    let mut p = pod(&name, &uid, vec![container(&lab, "app", "exec sleep 3600")]);
    p.init_containers = (0..inits)
        .map(|i| container(&lab, &format!("init{i}"), "exit 0"))
        .collect();
    let events = d.start_pod(p).await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{events:#?}"
    );
    let statuses = statuses(d, &uid).await;
    let mut lat: Vec<f64> = events
        .iter()
        .filter(|e| e.reason == "Completed")
        .map(|e| {
            let finished = statuses[&e.container_name].finished_at;
            (e.time_unix_nano - finished) as f64 / 1e6
        })
        .collect();
    assert_eq!(lat.len(), inits, "every init container's exit was seen");
    d.stop_pod(&uid).await;
    lat.sort_by(f64::total_cmp);
    lat
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_init_exits_reach_the_flow_through_containerd_events() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let d = Daemon::start_with(&lab, &[], Some(&log)).await;
    let text = wait_for_text(&log, "source=containerd").await;
    assert!(
        text.contains("watching the node's containers through events source=containerd"),
        "containerd 1.6: exits come from its events service\n{text}"
    );
    let events = exit_to_event_ms(&d, 5).await;
    drop(d);

    let log = dir.path().join("relist.log");
    let d = Daemon::start_with(&lab, &["--container-events", "relist"], Some(&log)).await;
    let relist = exit_to_event_ms(&d, 5).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("through events"),
        "--container-events relist opens no stream\n{text}"
    );
    let median = |v: &[f64]| v[v.len() / 2];
    println!(
        "exit → Completed event: containerd events median {:.1} ms {events:.1?}; \
         relisting every 1 s median {:.1} ms {relist:.1?}",
        median(&events),
        median(&relist)
    );
}
