//! Env vars a real container sees: values read by podstart from the pod's
//! own fields (the pod IP from the lab's CNI, a label), and a literal value
//! of the kind a client resolves from a Secret.
use super::{Daemon, container, in_pod_subnet, lab, pod, summary, unique, wait_for_text};
use podstart::proto::v1::{EnvVar, FieldSource, field_source, start_event::Payload};

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
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_env_from_the_pod_ip_a_label_and_a_secret_value() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("fields");
    let mut c = container(
        &lab,
        "app",
        "echo ip=$POD_IP app=$APP token=$TOKEN; exec sleep 3600",
    );
    c.env = vec![
        from_field("POD_IP", "status.podIP"),
        from_field("APP", "metadata.labels['app']"),
        EnvVar {
            name: "TOKEN".into(),
            value: "s3cr3t-from-a-secret".into(),
            ..Default::default()
        },
    ];
    let mut spec = pod(&name, &uid, vec![c]);
    spec.metadata
        .as_mut()
        .unwrap()
        .labels
        .insert("app".into(), "fields-demo".into());
    let events = d.start_pod(spec).await;
    let Some(Payload::PodStarted(started)) = &events.last().unwrap().payload else {
        panic!("pod did not start: {:#?}", summary(&events));
    };
    let ip = started.ips.first().expect("a pod IP").clone();
    assert!(in_pod_subnet(&ip), "{ip}");
    let log = d
        .log_root
        .join(format!("e2e_{name}_{uid}"))
        .join("app/0.log");
    let want = format!("ip={ip} app=fields-demo token=s3cr3t-from-a-secret");
    let text = wait_for_text(&log, &want).await;
    assert!(text.contains(&want), "{text}");
    let stop = d.stop_pod(&uid).await;
    assert!(
        matches!(stop.last().unwrap().payload, Some(Payload::PodStopped(_))),
        "{:#?}",
        summary(&stop)
    );
}
