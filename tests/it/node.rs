//! What podstart decides from the node and the pod's own fields: the stop
//! order of sidecars, env vars read from the pod's fields, and the node's
//! admission of what a pod requests.

use std::{sync::Arc, time::Duration};

use crate::common::*;
use podstart::node::{Amounts, Node};
use podstart::proto::v1::{
    ContainerRestartPolicy, EnvVar, FieldSource, PodFailed, Resources, field_source,
    start_event::Payload,
};

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

fn from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(FieldSource {
            source: Some(field_source::Source::FieldPath(path.into())),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn env_reads_the_pod_ip_and_labels_once_the_sandbox_has_them() {
    let h = Harness::with(|t| {
        t.flow.node = Arc::new(Node {
            name: "node-7".into(),
            ips: vec!["192.168.7.1".into()],
            ..Node::default()
        })
    })
    .await;
    let mut c = container("app");
    c.env = vec![
        from_field("POD_IP", "status.podIP"),
        from_field("APP", "metadata.labels['app']"),
        from_field("NODE", "spec.nodeName"),
        from_field("HOST_IP", "status.hostIP"),
        EnvVar {
            name: "URL".into(),
            value: "http://$(POD_IP)/$(APP)".into(),
            ..Default::default()
        },
    ];
    let mut p = pod("web", "u-env", vec![c]);
    p.metadata
        .as_mut()
        .unwrap()
        .labels
        .insert("app".into(), "shop".into());
    let events = h.start(request(p)).await.unwrap();
    let Payload::PodStarted(started) = terminal(&events) else {
        panic!("{:?}", reasons(&events));
    };
    let ip = started
        .ips
        .first()
        .expect("the sim gives pods an IP")
        .clone();
    let cfg = h
        .sim
        .container_config(&started.containers[0].container_id)
        .unwrap();
    let env: Vec<(String, String)> = cfg.envs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let want = [
        ("POD_IP", ip.as_str()),
        ("APP", "shop"),
        ("NODE", "node-7"),
        ("HOST_IP", "192.168.7.1"),
        ("URL", &format!("http://{ip}/shop")),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env, want);
}

#[tokio::test]
async fn env_refuses_a_whole_label_map_and_a_value_beside_value_from() {
    let h = Harness::new().await;
    let mut whole = container("app");
    whole.env = vec![from_field("L", "metadata.labels")];
    let mut both = container("app");
    both.env = vec![EnvVar {
        value: "x".into(),
        ..from_field("P", "status.podIP")
    }];
    let cases = [
        (
            whole,
            "pod.containers[0].env[0].value_from.field_path: must be one of",
        ),
        (
            both,
            "pod.containers[0].env[0].value: must be empty when value_from is set",
        ),
    ];
    for (c, want) in cases {
        let err = h
            .start(request(pod("web", "u-bad", vec![c])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(want), "{}", err.message());
    }
    assert_eq!(h.sim.calls("RunPodSandbox"), 0);
}

fn asking(
    name: &str,
    uid: &str,
    cpu_millis: i64,
    memory_bytes: i64,
) -> podstart::proto::v1::PodSpec {
    let mut c = container("app");
    c.resources = Some(Resources {
        cpu_request_millis: cpu_millis,
        memory_request_bytes: memory_bytes,
        ..Default::default()
    });
    pod(name, uid, vec![c])
}

fn failed(events: &[podstart::proto::v1::StartEvent]) -> PodFailed {
    match terminal(events) {
        Payload::PodFailed(f) => f.clone(),
        _ => panic!("{:?}", reasons(events)),
    }
}

#[tokio::test]
async fn a_pod_the_node_cannot_hold_is_refused_before_any_runtime_call() {
    let h = Harness::with(|t| {
        t.flow.node = Arc::new(Node {
            allocatable: Amounts {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
            },
            ..Node::default()
        })
    })
    .await;
    // What the harness's recovery at start-up called.
    let at_start = h.sim.calls("ListPodSandbox");
    let f = failed(
        &h.start(request(asking("huge", "u-huge", 100_000, 0)))
            .await
            .unwrap(),
    );
    assert_eq!(
        (f.reason.as_str(), f.code, f.message.as_str()),
        (
            "OutOfcpu",
            tonic::Code::ResourceExhausted as i32,
            "Node didn't have enough resource: cpu, requested: 100000, used: 0, capacity: 2000"
        )
    );
    for call in [
        "ListPodSandbox",
        "RunPodSandbox",
        "ImageStatus",
        "PullImage",
    ] {
        let before = if call == "ListPodSandbox" {
            at_start
        } else {
            0
        };
        assert_eq!(h.sim.calls(call), before, "{call}");
    }

    // What running pods request counts; a stopped pod's no longer does.
    let events = h
        .start(request(asking("first", "u-1", 1500, 0)))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:?}",
        reasons(&events)
    );
    let f = failed(
        &h.start(request(asking("second", "u-2", 600, 1 << 20)))
            .await
            .unwrap(),
    );
    assert_eq!(
        f.message,
        "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
    );
    let f = failed(
        &h.start(request(asking("third", "u-3", 0, 2 << 30)))
            .await
            .unwrap(),
    );
    assert_eq!(f.reason, "OutOfmemory");
    h.stop("u-1").await.unwrap();
    let events = h
        .start(request(asking("second", "u-2", 600, 1 << 20)))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:?}",
        reasons(&events)
    );
}

#[tokio::test]
async fn a_restarted_podstart_counts_the_pods_it_recovers() {
    let node = Node {
        allocatable: Amounts {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
        },
        ..Node::default()
    };
    let h = Harness::with(|t| t.flow.node = Arc::new(node.clone())).await;
    let events = h
        .start(request(asking("first", "u-1", 1500, 1 << 20)))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:?}",
        reasons(&events)
    );

    let restarted = h.restarted_starter();
    assert_eq!(restarted.requested(), Amounts::default());
    restarted.recover().await.unwrap();
    assert_eq!(
        restarted.requested(),
        Amounts {
            cpu_millis: 1500,
            memory_bytes: 1 << 20,
        }
    );
}
