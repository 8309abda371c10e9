//! Authorization through the real API: the harness calls as root over a
//! unix socket (`unix:uid=0,unix:gid=0`), and each test gives a policy
//! (`Tuning::authz_policy`) that names that identity for some verbs and
//! namespaces, or not at all.

use std::time::Duration;

use crate::common::*;
use crate::hostile::cri_calls;
use podstart::pleg::{PlegConfig, SourceChoice};
use podstart::proto::v1::{
    GetPodRequest, ListPodsRequest, PodRef, StartContainerRequest, StartEvent, StopPodRequest,
    WatchEventsRequest, start_event::Payload,
};
use tokio_stream::StreamExt;
use tonic::{Code, Status};

fn in_namespace(namespace: &str, name: &str, uid: &str) -> podstart::proto::v1::StartPodRequest {
    let mut p = pod(name, uid, vec![container("app")]);
    p.metadata.as_mut().unwrap().namespace = namespace.to_string();
    request(p)
}

fn by_uid(uid: &str) -> Option<PodRef> {
    Some(PodRef {
        uid: uid.to_string(),
        ..Default::default()
    })
}

fn denied(result: Result<impl std::fmt::Debug, Status>, what: &str, message: &str) {
    let status = result.expect_err(&format!("{what}: must be denied"));
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{what}: {}",
        status.message()
    );
    assert!(
        status.message().starts_with("caller unix:uid=0,"),
        "{what}: {:?} names the caller",
        status.message()
    );
    assert!(
        status.message().ends_with(message),
        "{what}: {:?} should end with {message:?}",
        status.message()
    );
}

/// `podstart_authz_denied_total{verb=...}`, 0 when not yet counted.
fn denials(h: &Harness, verb: &str) -> u64 {
    let line = format!("podstart_authz_denied_total{{verb=\"{verb}\"}} ");
    h.metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&line).map(|n| n.parse().unwrap()))
        .unwrap_or(0)
}

fn started(events: &[StartEvent]) -> bool {
    matches!(terminal(events), Payload::PodStarted(_))
}

#[tokio::test]
async fn a_caller_no_rule_names_is_denied_before_the_runtime() {
    // The watcher relists once at start and not again while the calls run,
    // so every CRI call counted after it would be theirs.
    let h = Harness::with(|t| {
        t.pleg = PlegConfig {
            source: SourceChoice::Relist,
            relist_period: Duration::from_secs(3600),
            ..PlegConfig::default()
        };
        t.authz_policy = Some(
            r#"
rules:
  - identities: ["cn:orchestrator", "unix:uid=1000"]
    namespaces: ["*"]
    verbs: [start, stop, read, watch]
    podSecurity: privileged
"#
            .into(),
        );
    })
    .await;
    h.starter.pleg().synced().await;
    let before = cri_calls(&h);
    let mut client = h.client.clone();

    denied(
        client
            .start_pod(in_namespace("default", "web", "uid-web"))
            .await,
        "StartPod",
        "may not start pods in namespace \"default\"",
    );
    denied(
        client
            .start_container(StartContainerRequest {
                pod_uid: "uid-web".into(),
                container: Some(container("debug")),
                credentials: vec![],
            })
            .await,
        "StartContainer",
        "may not start pods in any namespace",
    );
    denied(
        client
            .stop_pod(StopPodRequest {
                pod: by_uid("uid-web"),
                grace_period_seconds: None,
            })
            .await,
        "StopPod",
        "may not stop pods in any namespace",
    );
    denied(
        client
            .get_pod(GetPodRequest {
                pod: Some(PodRef {
                    namespace: "kube-system".into(),
                    name: "web".into(),
                    ..Default::default()
                }),
            })
            .await,
        "GetPod",
        "may not read pods in namespace \"kube-system\"",
    );
    denied(
        client.list_pods(ListPodsRequest::default()).await,
        "ListPods",
        "may not read pods in any namespace",
    );
    denied(
        client.watch_events(WatchEventsRequest::default()).await,
        "WatchEvents",
        "may not watch pods in any namespace",
    );
    // Denied before validation too: a malformed request learns nothing.
    denied(
        client
            .start_pod(in_namespace("Not A Label", "web", "uid web"))
            .await,
        "StartPod (malformed)",
        "may not start pods in namespace \"Not A Label\"",
    );
    assert_eq!(cri_calls(&h), before, "no call reached the runtime");

    assert_eq!(denials(&h, "start"), 3);
    assert_eq!(denials(&h, "stop"), 1);
    assert_eq!(denials(&h, "read"), 2);
    assert_eq!(denials(&h, "watch"), 1);
}

#[tokio::test]
async fn verbs_and_namespaces_are_granted_by_rule() {
    let h = Harness::with(|t| {
        t.authz_policy = Some(
            r#"
rules:
  - identities: ["unix:uid=0"]
    namespaces: ["team-*"]
    verbs: [start, read]
  - identities: ["unix:uid=0"]
    namespaces: ["other"]
    verbs: [stop]
"#
            .into(),
        );
    })
    .await;
    let mut client = h.client.clone();

    // A namespace the rule's globs cover: the pod starts.
    let events = h
        .start(in_namespace("team-a", "web", "uid-team"))
        .await
        .expect("allowed");
    assert!(started(&events), "{:?}", reasons(&events));
    // One they do not: refused, nothing started.
    denied(
        h.start(in_namespace("default", "web", "uid-default")).await,
        "StartPod in default",
        "may not start pods in namespace \"default\"",
    );
    assert_eq!(h.sim.calls("RunPodSandbox"), 1);

    // Read, by uid, in the pod's namespace.
    let pod = client
        .get_pod(GetPodRequest {
            pod: by_uid("uid-team"),
        })
        .await
        .expect("team-a is readable")
        .into_inner();
    assert_eq!(pod.namespace, "team-a");

    // Stop is held only in `other`: the pod's namespace decides.
    denied(
        h.stop("uid-team").await,
        "StopPod of a team-a pod",
        "may not stop pods in namespace \"team-a\"",
    );
    assert_eq!(h.sim.calls("StopPodSandbox"), 0);
    // A pod that is not there: NOT_FOUND, since the caller may stop pods
    // somewhere.
    let status = h.stop("uid-none").await.expect_err("no such pod");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    let status = client
        .get_pod(GetPodRequest {
            pod: by_uid("uid-none"),
        })
        .await
        .expect_err("no such pod");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());

    // An ephemeral container is a start, in the pod's namespace: allowed.
    let stream = client
        .start_container(StartContainerRequest {
            pod_uid: "uid-team".into(),
            container: Some(container("debug")),
            credentials: vec![],
        })
        .await
        .expect("start is held in team-a")
        .into_inner();
    let events = collect(stream).await;
    assert!(started(&events), "{:?}", reasons(&events));

    // Watch is held nowhere.
    denied(
        client.watch_events(WatchEventsRequest::default()).await,
        "WatchEvents",
        "may not watch pods in any namespace",
    );
    assert_eq!(denials(&h, "start"), 1);
    assert_eq!(denials(&h, "stop"), 1);
    assert_eq!(denials(&h, "watch"), 1);
    assert_eq!(denials(&h, "read"), 0);
}

#[tokio::test]
async fn list_and_watch_show_only_namespaces_the_caller_may_read() {
    let h = Harness::with(|t| {
        t.authz_policy = Some(
            r#"
rules:
  - identities: ["unix:gid=0"]
    namespaces: ["*"]
    verbs: [start, stop]
  - identities: ["unix:uid=0"]
    namespaces: ["team-*"]
    verbs: [read, watch]
"#
            .into(),
        );
    })
    .await;
    let mut client = h.client.clone();
    let mut feed = client
        .watch_events(WatchEventsRequest::default())
        .await
        .expect("watch is held in team-*")
        .into_inner();

    // The pod the caller may not read starts first: its events come
    // before the other's on the node's feed.
    for (ns, uid) in [("default", "uid-hidden"), ("team-a", "uid-shown")] {
        let events = h.start(in_namespace(ns, "web", uid)).await.unwrap();
        assert!(started(&events), "{ns}: {:?}", reasons(&events));
    }

    // The feed got the team-a pod's events, and none of the other's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("the event comes")
            .expect("the feed goes on")
            .expect("feed item");
        let done = event.pod_uid == "uid-shown" && event.is_terminal();
        seen.push(event);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().all(|e| e.pod_namespace == "team-a"),
        "{:?}",
        seen.iter()
            .map(|e| (&e.pod_namespace, &e.reason))
            .collect::<Vec<_>>()
    );
    let pods = client
        .list_pods(ListPodsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pods;
    let uids: Vec<_> = pods.iter().map(|p| p.uid.as_str()).collect();
    assert_eq!(uids, ["uid-shown"]);
    let pods = client
        .list_pods(ListPodsRequest {
            namespace: "team-a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pods;
    assert_eq!(pods.len(), 1);
    denied(
        client
            .list_pods(ListPodsRequest {
                namespace: "default".into(),
                ..Default::default()
            })
            .await,
        "ListPods in default",
        "may not read pods in namespace \"default\"",
    );
    denied(
        client
            .get_pod(GetPodRequest {
                pod: by_uid("uid-hidden"),
            })
            .await,
        "GetPod of the default pod",
        "may not read pods in namespace \"default\"",
    );
    denied(
        client
            .watch_events(WatchEventsRequest {
                namespace: "default".into(),
                ..Default::default()
            })
            .await,
        "WatchEvents in default",
        "may not watch pods in namespace \"default\"",
    );

    // Stopping is allowed everywhere (the socket's group rule).
    for uid in ["uid-hidden", "uid-shown"] {
        let events = h.stop(uid).await.expect("stop is held everywhere");
        assert!(
            matches!(terminal(&events), Payload::PodStopped(_)),
            "{:?}",
            reasons(&events)
        );
    }
}

// ------------------------------------------------- `podstart serve` process

#[tokio::test]
async fn serve_refuses_a_policy_file_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  - identities: [\"unix:uid=0\"]\n    namespaces: [\"*\"]\n    verbs: [start, delete]\n",
    )
    .unwrap();
    let mut child = crate::process::Proc(
        std::process::Command::new(crate::process::podstart_bin())
            .args(["serve", "--runtime-endpoint", "sim"])
            .arg(format!(
                "--listen=unix://{}",
                dir.path().join("podstart.sock").display()
            ))
            .arg(format!(
                "--metrics-listen=127.0.0.1:{}",
                crate::net::free_port()
            ))
            .arg("--authz-policy")
            .arg(&policy)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    crate::process::wait_for(
        || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        },
        "podstart to exit",
        crate::serve::WAIT,
    )
    .await;
    assert!(!status.unwrap().success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "authorization policy {}: rules[0].verbs[1]: unknown verb \"delete\" (one of start, stop, read, watch)",
            policy.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_enforces_its_policy_file_and_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let rule = |identity: &str| {
        format!(
            "rules:\n  - identities: [\"{identity}\"]\n    namespaces: [\"*\"]\n    verbs: [read]\n"
        )
    };
    std::fs::write(&policy, rule("cn:someone-else")).unwrap();
    let serve =
        crate::serve::serve_with("sim", &["--authz-policy", policy.to_str().unwrap()]).await;
    let channel = podstart::endpoint::channel(
        &podstart::endpoint::Address::Unix(serve.socket.clone()),
        podstart::endpoint::Peer::Podstart,
    )
    .unwrap();
    let mut client = podstart::proto::v1::pod_starter_client::PodStarterClient::new(channel);
    denied(
        client.list_pods(ListPodsRequest::default()).await,
        "ListPods",
        "may not read pods in any namespace",
    );
    let metrics = crate::serve::http_body(&serve.metrics, "/metrics");
    assert!(
        metrics.contains("podstart_authz_denied_total{verb=\"read\"} 1"),
        "{metrics}"
    );

    // The file now names the caller: within a few seconds, it may list.
    std::fs::write(&policy, rule("unix:uid=0")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client.list_pods(ListPodsRequest::default()).await {
            Ok(_) => break,
            Err(s) => {
                assert_eq!(s.code(), Code::PermissionDenied, "{}", s.message());
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the new policy never took effect"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
