use super::*;
use crate::proto::v1::Lifecycle;

fn meta() -> PodMetadata {
    PodMetadata {
        name: "web".into(),
        namespace: "prod".into(),
        uid: "u-1".into(),
        labels: HashMap::from([
            ("app".into(), "web".into()),
            (POD_NAME.into(), "spoofed".into()),
        ]),
        ..Default::default()
    }
}

#[test]
fn fnv1a_reference_vectors() {
    // Published FNV-1a 32-bit test vectors.
    let cases: [(&[u8], u32); 4] = [
        (b"", 0x811c_9dc5),
        (b"a", 0xe40c_292c),
        (b"foobar", 0xbf9c_f968),
        (b"hello", 0x4f9f_2cab),
    ];
    for (input, want) in cases {
        assert_eq!(fnv1a_32(input), want, "{input:?}");
    }
}

#[test]
fn container_hash_is_fnv_of_name_image_json() {
    let c = Container {
        name: "app".into(),
        image: "busybox:1.36".into(),
        command: vec!["sleep".into()],
        ..Default::default()
    };
    let want = fnv1a_32(br#"{"name":"app","image":"busybox:1.36"}"#);
    assert_eq!(container_hash(&c), want);
    // Pinned, so a change of field order or escaping shows up.
    assert_eq!(format!("{:x}", container_hash(&c)), format!("{want:x}"));
    assert_eq!(want, 0x4e0a_fd58); // computed independently (Python)
    // Only name and image count.
    let other = Container {
        args: vec!["x".into()],
        ..c.clone()
    };
    assert_eq!(container_hash(&other), want);
    let renamed = Container {
        name: "app2".into(),
        ..c
    };
    assert_ne!(container_hash(&renamed), want);
}

#[test]
fn pod_labels_carry_identity_and_managed() {
    let l = pod_labels(&meta());
    assert_eq!(l[POD_NAME], "web");
    assert_eq!(l[POD_NAMESPACE], "prod");
    assert_eq!(l[POD_UID], "u-1");
    assert_eq!(l[MANAGED], "true");
    assert_eq!(l["app"], "web");
    assert_eq!(l.len(), 5);
}

#[test]
fn container_labels_and_kind_round_trip() {
    for kind in [
        ContainerKind::Init,
        ContainerKind::Sidecar,
        ContainerKind::App,
        ContainerKind::Ephemeral,
    ] {
        let l = container_labels(&meta(), "c", kind);
        assert_eq!(l[CONTAINER_NAME], "c");
        assert_eq!(l[POD_UID], "u-1");
        assert!(!l.contains_key("app"), "pod labels are not copied");
        assert_eq!(container_kind_from_labels(&l), kind);
    }
    assert_eq!(
        container_kind_from_labels(&HashMap::new()),
        ContainerKind::Unspecified
    );
}

#[test]
fn annotations_defaults_and_readers() {
    let pod = PodSpec::default();
    let c = Container {
        name: "c".into(),
        image: "busybox".into(),
        ..Default::default()
    };
    let a = container_annotations(&pod, &c, 3);
    assert_eq!(a[CONTAINER_RESTART_COUNT], "3");
    assert_eq!(a[TERMINATION_MESSAGE_PATH], "/dev/termination-log");
    assert_eq!(a[TERMINATION_MESSAGE_POLICY], "File");
    assert_eq!(a[POD_TERMINATION_GRACE_PERIOD], "30");
    assert_eq!(a[CONTAINER_HASH], a[CONTAINER_HASH_WITHOUT_RESOURCES]);
    assert!(!a.contains_key(CONTAINER_PRESTOP_HANDLER));
    assert!(!a.contains_key(CONTAINER_PORTS));
    assert_eq!(restart_count_from_annotations(&a), Some(3));
    assert_eq!(grace_period_from_annotations(&a), Some(30));
    assert_eq!(prestop_from_annotations(&a), None);

    let pod = PodSpec {
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    };
    let c = Container {
        termination_message_path: "/tmp/msg".into(),
        termination_message_policy: TerminationMessagePolicy::FallbackToLogsOnError as i32,
        ..c
    };
    let a = container_annotations(&pod, &c, 0);
    assert_eq!(a[TERMINATION_MESSAGE_PATH], "/tmp/msg");
    assert_eq!(a[TERMINATION_MESSAGE_POLICY], "FallbackToLogsOnError");
    assert_eq!(grace_period_from_annotations(&a), Some(5));
}

#[test]
fn prestop_json_shape_and_round_trip() {
    let cases = [
        (
            Action::Exec(ExecAction {
                command: vec!["sh".into(), "-c".into(), "echo \"bye\"".into()],
            }),
            r#"{"exec":{"command":["sh","-c","echo \"bye\""]}}"#,
        ),
        (
            Action::HttpGet(HttpGetAction {
                scheme: "HTTPS".into(),
                host: "10.0.0.1".into(),
                port: "8080".into(),
                path: "/stop".into(),
                headers: vec![HttpHeader {
                    name: "X-A".into(),
                    value: "b".into(),
                }],
            }),
            r#"{"httpGet":{"path":"/stop","port":8080,"host":"10.0.0.1","scheme":"HTTPS","httpHeaders":[{"name":"X-A","value":"b"}]}}"#,
        ),
        (
            Action::HttpGet(HttpGetAction {
                port: "http".into(),
                ..Default::default()
            }),
            r#"{"httpGet":{"port":"http"}}"#,
        ),
        (
            Action::Sleep(SleepAction { seconds: 7 }),
            r#"{"sleep":{"seconds":7}}"#,
        ),
    ];
    for (action, json) in cases {
        let h = Handler {
            action: Some(action),
        };
        let c = Container {
            lifecycle: Some(Lifecycle {
                post_start: None,
                pre_stop: Some(h.clone()),
            }),
            ..Default::default()
        };
        let a = container_annotations(&PodSpec::default(), &c, 0);
        assert_eq!(a[CONTAINER_PRESTOP_HANDLER], json);
        assert_eq!(prestop_from_annotations(&a), Some(h));
    }
}

#[test]
fn prestop_reader_rejects_garbage() {
    for bad in ["", "{}", "not json", r#"{"exec":5}"#] {
        let a = HashMap::from([(CONTAINER_PRESTOP_HANDLER.to_string(), bad.to_string())]);
        assert_eq!(prestop_from_annotations(&a), None, "{bad}");
    }
}

#[test]
fn ports_annotation_shape_and_round_trip() {
    let ports = vec![
        ContainerPort {
            name: "http".into(),
            container_port: 80,
            ..Default::default()
        },
        ContainerPort {
            container_port: 53,
            host_port: 5353,
            host_ip: "127.0.0.1".into(),
            protocol: Protocol::Udp as i32,
            ..Default::default()
        },
    ];
    let c = Container {
        ports: ports.clone(),
        ..Default::default()
    };
    let a = container_annotations(&PodSpec::default(), &c, 0);
    assert_eq!(
        a[CONTAINER_PORTS],
        r#"[{"name":"http","containerPort":80,"protocol":"TCP"},{"hostPort":5353,"containerPort":53,"protocol":"UDP","hostIP":"127.0.0.1"}]"#
    );
    let mut want = ports;
    want[0].protocol = Protocol::Tcp as i32;
    assert_eq!(ports_from_annotations(&a), Some(want));
}
