use super::*;

use crate::proto::v1::{
    ContainerPort, Device, EnvVar, ExecAction, HttpGetAction, Lifecycle, Mount, PodMetadata, Probe,
    Resources, SecurityContext, SleepAction, TcpSocketAction,
};

fn good_container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "localhost/lab/busybox:1".into(),
        ..Default::default()
    }
}

fn good() -> StartPodRequest {
    StartPodRequest {
        pod: Some(PodSpec {
            metadata: Some(PodMetadata {
                name: "web-1.prod".into(),
                namespace: "default".into(),
                uid: "0b6a-4c1e".into(),
                ..Default::default()
            }),
            containers: vec![good_container("app"), good_container("app2")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(r: &mut StartPodRequest) -> &mut PodSpec {
    r.pod.as_mut().expect("pod")
}

fn meta(r: &mut StartPodRequest) -> &mut PodMetadata {
    pod(r).metadata.as_mut().expect("metadata")
}

fn c1(r: &mut StartPodRequest) -> &mut Container {
    &mut pod(r).containers[1]
}

fn hook(action: Action) -> Option<Lifecycle> {
    Some(Lifecycle {
        post_start: Some(Handler {
            action: Some(action),
        }),
        pre_stop: None,
    })
}

fn http(port: &str) -> Action {
    Action::HttpGet(HttpGetAction {
        port: port.into(),
        ..Default::default()
    })
}

type Mutation = Box<dyn Fn(&mut StartPodRequest)>;

/// (description, mutation, expected field path, expected rule fragment)
fn cases() -> Vec<(&'static str, Mutation, &'static str, &'static str)> {
    vec![
        ("pod missing", Box::new(|r| r.pod = None), "pod", "required"),
        (
            "metadata missing",
            Box::new(|r| pod(r).metadata = None),
            "pod.metadata",
            "required",
        ),
        (
            "name empty",
            Box::new(|r| meta(r).name.clear()),
            "pod.metadata.name",
            "required",
        ),
        (
            "name upper-case",
            Box::new(|r| meta(r).name = "Web".into()),
            "pod.metadata.name",
            "DNS-1123 subdomain",
        ),
        (
            "name label ends in '-'",
            Box::new(|r| meta(r).name = "web-.x".into()),
            "pod.metadata.name",
            "DNS-1123 subdomain",
        ),
        (
            "name too long",
            Box::new(|r| meta(r).name = vec!["a".repeat(63); 4].join(".") + "a"),
            "pod.metadata.name",
            "DNS-1123 subdomain",
        ),
        (
            "namespace empty",
            Box::new(|r| meta(r).namespace.clear()),
            "pod.metadata.namespace",
            "required",
        ),
        (
            "namespace with dot",
            Box::new(|r| meta(r).namespace = "a.b".into()),
            "pod.metadata.namespace",
            "DNS-1123 label",
        ),
        (
            "namespace too long",
            Box::new(|r| meta(r).namespace = "a".repeat(64)),
            "pod.metadata.namespace",
            "DNS-1123 label",
        ),
        (
            "uid empty",
            Box::new(|r| meta(r).uid.clear()),
            "pod.metadata.uid",
            "required",
        ),
        (
            "uid too long",
            Box::new(|r| meta(r).uid = "u".repeat(129)),
            "pod.metadata.uid",
            "128",
        ),
        (
            "uid with slash",
            Box::new(|r| meta(r).uid = "a/b".into()),
            "pod.metadata.uid",
            "'/'",
        ),
        (
            "uid with space",
            Box::new(|r| meta(r).uid = "a b".into()),
            "pod.metadata.uid",
            "whitespace",
        ),
        (
            "hostname invalid",
            Box::new(|r| pod(r).hostname = "host.name".into()),
            "pod.hostname",
            "DNS-1123 label",
        ),
        (
            "subdomain invalid",
            Box::new(|r| pod(r).subdomain = "-x".into()),
            "pod.subdomain",
            "DNS-1123 label",
        ),
        (
            "negative grace period",
            Box::new(|r| pod(r).termination_grace_period_seconds = Some(-1)),
            "pod.termination_grace_period_seconds",
            ">= 0",
        ),
        (
            "empty sysctl name",
            Box::new(|r| {
                pod(r).sysctls.insert(String::new(), "1".into());
            }),
            "pod.sysctls",
            "empty",
        ),
        (
            "no app containers",
            Box::new(|r| pod(r).containers.clear()),
            "pod.containers",
            "at least one",
        ),
        (
            "container name empty",
            Box::new(|r| c1(r).name.clear()),
            "pod.containers[1].name",
            "required",
        ),
        (
            "container name invalid",
            Box::new(|r| c1(r).name = "App_2".into()),
            "pod.containers[1].name",
            "DNS-1123 label",
        ),
        (
            "duplicate app name",
            Box::new(|r| c1(r).name = "app".into()),
            "pod.containers[1].name",
            "duplicate name \"app\"",
        ),
        (
            "duplicate across init and app",
            Box::new(|r| pod(r).init_containers = vec![good_container("app2")]),
            "pod.containers[1].name",
            "duplicate name \"app2\"",
        ),
        (
            "duplicate across app and ephemeral",
            Box::new(|r| pod(r).ephemeral_containers = vec![good_container("app")]),
            "pod.ephemeral_containers[0].name",
            "duplicate name \"app\"",
        ),
        (
            "image empty",
            Box::new(|r| c1(r).image.clear()),
            "pod.containers[1].image",
            "required",
        ),
        (
            "image invalid",
            Box::new(|r| c1(r).image = "Busybox:latest".into()),
            "pod.containers[1].image",
            "invalid image reference",
        ),
        (
            "init image invalid",
            Box::new(|r| {
                pod(r).init_containers = vec![Container {
                    image: "x:".into(),
                    ..good_container("init")
                }]
            }),
            "pod.init_containers[0].image",
            "invalid image reference",
        ),
        (
            "mount container path relative",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "data".into(),
                    host_path: "/srv".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].container_path",
            "absolute",
        ),
        (
            "mount host path with ..",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "/data".into(),
                    host_path: "/srv/../etc".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].host_path",
            "'..'",
        ),
        (
            "bidirectional unprivileged",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "/data".into(),
                    host_path: "/srv".into(),
                    propagation: MountPropagation::Bidirectional as i32,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].propagation",
            "privileged",
        ),
        (
            "device host path relative",
            Box::new(|r| {
                c1(r).devices = vec![Device {
                    container_path: "/dev/x".into(),
                    host_path: "dev/x".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].devices[0].host_path",
            "absolute",
        ),
        (
            "device container path with ..",
            Box::new(|r| {
                c1(r).devices = vec![Device {
                    container_path: "/dev/../x".into(),
                    host_path: "/dev/x".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].devices[0].container_path",
            "'..'",
        ),
        (
            "device permissions",
            Box::new(|r| {
                c1(r).devices = vec![Device {
                    container_path: "/dev/x".into(),
                    host_path: "/dev/x".into(),
                    permissions: "rx".into(),
                }]
            }),
            "pod.containers[1].devices[0].permissions",
            "'r', 'w' and 'm'",
        ),
        (
            "container port 0",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    container_port: 0,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].container_port",
            "between 1 and 65535",
        ),
        (
            "container port too big",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    container_port: 65536,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].container_port",
            "between 1 and 65535",
        ),
        (
            "host port negative",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    container_port: 80,
                    host_port: -1,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].host_port",
            "between 0 and 65535",
        ),
        (
            "port name invalid",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    name: "HTTP".into(),
                    container_port: 80,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].name",
            "lower-case",
        ),
        (
            "port name duplicate",
            Box::new(|r| {
                let p = ContainerPort {
                    name: "http".into(),
                    container_port: 80,
                    ..Default::default()
                };
                c1(r).ports = vec![p.clone(), p];
            }),
            "pod.containers[1].ports[1].name",
            "duplicate port name",
        ),
        (
            "env name empty",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: String::new(),
                    value: "x".into(),
                }]
            }),
            "pod.containers[1].env[0].name",
            "required",
        ),
        (
            "env name with =",
            Box::new(|r| {
                c1(r).env = vec![
                    EnvVar {
                        name: "OK".into(),
                        value: String::new(),
                    },
                    EnvVar {
                        name: "A=B".into(),
                        value: "x".into(),
                    },
                ]
            }),
            "pod.containers[1].env[1].name",
            "'='",
        ),
        (
            "hook without action",
            Box::new(|r| {
                c1(r).lifecycle = Some(Lifecycle {
                    post_start: None,
                    pre_stop: Some(Handler { action: None }),
                })
            }),
            "pod.containers[1].lifecycle.pre_stop",
            "one of exec, http_get or sleep",
        ),
        (
            "tcp_socket hook",
            Box::new(|r| {
                c1(r).lifecycle = hook(Action::TcpSocket(TcpSocketAction {
                    host: String::new(),
                    port: "80".into(),
                }))
            }),
            "pod.containers[1].lifecycle.post_start.tcp_socket",
            "not supported",
        ),
        (
            "exec hook without command",
            Box::new(|r| c1(r).lifecycle = hook(Action::Exec(ExecAction { command: vec![] }))),
            "pod.containers[1].lifecycle.post_start.exec.command",
            "must not be empty",
        ),
        (
            "sleep hook negative",
            Box::new(|r| c1(r).lifecycle = hook(Action::Sleep(SleepAction { seconds: -1 }))),
            "pod.containers[1].lifecycle.post_start.sleep.seconds",
            ">= 0",
        ),
        (
            "http hook without port",
            Box::new(|r| c1(r).lifecycle = hook(http(""))),
            "pod.containers[1].lifecycle.post_start.http_get.port",
            "required",
        ),
        (
            "ftp hook",
            Box::new(|r| {
                let mut get = http("80");
                if let Action::HttpGet(g) = &mut get {
                    g.scheme = "FTP".into();
                }
                c1(r).lifecycle = hook(get)
            }),
            "pod.containers[1].lifecycle.post_start.http_get.scheme",
            "must be HTTP or HTTPS",
        ),
        (
            "http hook port out of range",
            Box::new(|r| c1(r).lifecycle = hook(http("70000"))),
            "pod.containers[1].lifecycle.post_start.http_get.port",
            "between 1 and 65535",
        ),
        (
            "http hook port unknown name",
            Box::new(|r| c1(r).lifecycle = hook(http("admin"))),
            "pod.containers[1].lifecycle.post_start.http_get.port",
            "name of a container port",
        ),
        (
            "negative cpu request",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    cpu_request_millis: -1,
                    ..Default::default()
                })
            }),
            "pod.containers[1].resources.cpu_request_millis",
            ">= 0",
        ),
        (
            "negative memory limit",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    memory_limit_bytes: -1,
                    ..Default::default()
                })
            }),
            "pod.containers[1].resources.memory_limit_bytes",
            ">= 0",
        ),
        (
            "cpu request above limit",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    cpu_request_millis: 200,
                    cpu_limit_millis: 100,
                    ..Default::default()
                })
            }),
            "pod.containers[1].resources.cpu_request_millis",
            "<= cpu_limit_millis",
        ),
        (
            "memory request above limit",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    memory_request_bytes: 2,
                    memory_limit_bytes: 1,
                    ..Default::default()
                })
            }),
            "pod.containers[1].resources.memory_request_bytes",
            "<= memory_limit_bytes",
        ),
        (
            "restart policy ALWAYS on app container",
            Box::new(|r| c1(r).restart_policy = ContainerRestartPolicy::Always as i32),
            "pod.containers[1].restart_policy",
            "only allowed on init containers",
        ),
        (
            "target on app container",
            Box::new(|r| c1(r).target_container_name = "app".into()),
            "pod.containers[1].target_container_name",
            "only allowed on ephemeral",
        ),
        (
            "ephemeral with ports",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    ports: vec![ContainerPort {
                        container_port: 80,
                        ..Default::default()
                    }],
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].ports",
            "not allowed on ephemeral",
        ),
        (
            "ephemeral with lifecycle",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    lifecycle: hook(Action::Sleep(SleepAction { seconds: 1 })),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].lifecycle",
            "not allowed on ephemeral",
        ),
        (
            "ephemeral with resources",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    resources: Some(Resources {
                        cpu_limit_millis: 100,
                        ..Default::default()
                    }),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].resources",
            "not allowed on ephemeral",
        ),
        (
            "ephemeral with startup probe",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    startup_probe: Some(Probe::default()),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].startup_probe",
            "not allowed on ephemeral",
        ),
        (
            "startup probe on a regular init container",
            Box::new(|r| {
                let mut c = good_container("init");
                c.startup_probe = Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::Exec(crate::proto::v1::ExecAction {
                            command: vec!["true".into()],
                        })),
                    }),
                    ..Default::default()
                });
                pod(r).init_containers = vec![c];
            }),
            "pod.init_containers[0].startup_probe",
            "only allowed on init containers with restart_policy ALWAYS",
        ),
        (
            "sleep startup probe",
            Box::new(|r| {
                c1(r).startup_probe = Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::Sleep(SleepAction { seconds: 1 })),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].startup_probe.handler.sleep",
            "not supported in a probe",
        ),
        (
            "startup probe success threshold",
            Box::new(|r| {
                c1(r).startup_probe = Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::TcpSocket(crate::proto::v1::TcpSocketAction {
                            host: String::new(),
                            port: "80".into(),
                        })),
                    }),
                    success_threshold: 2,
                    ..Default::default()
                })
            }),
            "pod.containers[1].startup_probe.success_threshold",
            "must be 1",
        ),
        (
            "ephemeral with restart policy",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    restart_policy: ContainerRestartPolicy::Always as i32,
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].restart_policy",
            "not allowed on ephemeral",
        ),
        (
            "ephemeral target unknown",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    target_container_name: "nope".into(),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].target_container_name",
            "\"nope\"",
        ),
        (
            "ephemeral targeting another ephemeral",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![
                    good_container("dbg"),
                    Container {
                        target_container_name: "dbg".into(),
                        ..good_container("dbg2")
                    },
                ]
            }),
            "pod.ephemeral_containers[1].target_container_name",
            "must name an app or init container",
        ),
    ]
}

#[test]
fn valid_request_passes() {
    assert_eq!(validate_start_pod(&good()), Ok(()));
}

#[test]
fn valid_variants_pass() {
    let mut r = good();
    let p = pod(&mut r);
    p.hostname = "h-1".into();
    p.termination_grace_period_seconds = Some(0);
    p.init_containers = vec![Container {
        restart_policy: ContainerRestartPolicy::Always as i32,
        ..good_container("sidecar")
    }];
    p.ephemeral_containers = vec![Container {
        target_container_name: "sidecar".into(),
        ..good_container("dbg")
    }];
    let c = &mut p.containers[1];
    c.ports = vec![ContainerPort {
        name: "http".into(),
        container_port: 8080,
        host_port: 0,
        ..Default::default()
    }];
    c.lifecycle = Some(Lifecycle {
        post_start: Some(Handler {
            action: Some(http("http")),
        }),
        pre_stop: Some(Handler {
            action: Some(http("8080")),
        }),
    });
    c.mounts = vec![Mount {
        container_path: "/a/..b".into(),
        host_path: "/".into(),
        propagation: MountPropagation::Bidirectional as i32,
        ..Default::default()
    }];
    c.security_context = Some(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    });
    c.resources = Some(Resources {
        cpu_request_millis: 100,
        cpu_limit_millis: 100,
        memory_request_bytes: 0,
        memory_limit_bytes: 10,
    });
    assert_eq!(validate_start_pod(&r), Ok(()));
}

#[test]
fn each_rule_names_its_field() {
    for (what, mutate, field, rule) in cases() {
        let mut r = good();
        mutate(&mut r);
        match validate_start_pod(&r) {
            Ok(()) => panic!("{what}: accepted"),
            Err(e) => {
                assert_eq!(e.field, field, "{what}: {e}");
                assert!(e.rule.contains(rule), "{what}: rule {:?}", e.rule);
            }
        }
    }
}

#[test]
fn start_container_paths() {
    let c = Container {
        image: String::new(),
        ..good_container("dbg")
    };
    let e = validate_container("container", &c).expect_err("invalid");
    assert_eq!(e.field, "container.image");
    assert_eq!(e.to_string(), "container.image: required");

    let c = Container {
        ports: vec![ContainerPort {
            container_port: 80,
            ..Default::default()
        }],
        ..good_container("dbg")
    };
    assert_eq!(validate_container("container", &c), Ok(()));
    let e = validate_ephemeral("container", &c).expect_err("invalid");
    assert_eq!(e.field, "container.ports");
}

#[test]
fn dns_helpers() {
    for ok in ["a", "a-b", "0", &"a".repeat(63)] {
        assert!(is_dns1123_label(ok), "{ok}");
    }
    for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
        assert!(!is_dns1123_label(bad), "{bad}");
    }
    for ok in ["a.b", "a-1.b-2.c", "web"] {
        assert!(is_dns1123_subdomain(ok), "{ok}");
    }
    for bad in ["", ".a", "a.", "a..b", "a.-b", "a_b"] {
        assert!(!is_dns1123_subdomain(bad), "{bad}");
    }
}

#[test]
fn a_pod_ref_needs_the_uid_or_namespace_and_name() {
    let r = |uid: &str, namespace: &str, name: &str| PodRef {
        uid: uid.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    assert!(validate_pod_ref(&r("u1", "", "")).is_ok());
    assert!(validate_pod_ref(&r("", "ns", "web")).is_ok());
    for half in [r("", "ns", ""), r("", "", "web"), r("", "", "")] {
        let err = validate_pod_ref(&half).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod: give the uid, or both namespace and name"
        );
    }
}
