use super::*;

use crate::proto::v1::{
    Capabilities, ContainerPort, Device, EnvVar, ExecAction, GrpcAction, HttpGetAction, HttpHeader,
    Lifecycle, Mount, Resources, SleepAction, TcpSocketAction,
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

fn probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        handler: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["true".into()],
            })),
        }),
        period_seconds,
        failure_threshold,
        ..Default::default()
    }
}

fn grpc_probe(port: i32, service: &str) -> Probe {
    Probe {
        handler: Some(Handler {
            action: Some(Action::Grpc(GrpcAction {
                port,
                service: service.into(),
            })),
        }),
        ..probe(1, 3)
    }
}

fn cred(server: &str) -> RegistryCredential {
    RegistryCredential {
        server: server.into(),
        username: "u".into(),
        password: "p".into(),
        ..Default::default()
    }
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
                    ..Default::default()
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
                        ..Default::default()
                    },
                    EnvVar {
                        name: "A=B".into(),
                        value: "x".into(),
                        ..Default::default()
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
                    period_seconds: 1,
                    failure_threshold: 3,
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
                    period_seconds: 1,
                    failure_threshold: 3,
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
                    period_seconds: 1,
                    failure_threshold: 3,
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
            "liveness probe success threshold",
            Box::new(|r| {
                c1(r).liveness_probe = Some(Probe {
                    success_threshold: 2,
                    ..probe(1, 3)
                })
            }),
            "pod.containers[1].liveness_probe.success_threshold",
            "must be 1 for a liveness probe",
        ),
        (
            "readiness probe success threshold beyond the limit",
            Box::new(|r| {
                c1(r).readiness_probe = Some(Probe {
                    success_threshold: PROBE_THRESHOLD_MAX + 1,
                    ..probe(1, 3)
                })
            }),
            "pod.containers[1].readiness_probe.success_threshold",
            "between 0 and 1000000",
        ),
        (
            "readiness probe without a period",
            Box::new(|r| c1(r).readiness_probe = Some(probe(0, 3))),
            "pod.containers[1].readiness_probe.period_seconds",
            "between 1 and",
        ),
        (
            "liveness probe on a regular init container",
            Box::new(|r| {
                let mut c = good_container("init");
                c.liveness_probe = Some(probe(1, 3));
                pod(r).init_containers = vec![c];
            }),
            "pod.init_containers[0].liveness_probe",
            "only allowed on init containers with restart_policy ALWAYS",
        ),
        (
            "readiness probe on a regular init container",
            Box::new(|r| {
                let mut c = good_container("init");
                c.readiness_probe = Some(probe(1, 3));
                pod(r).init_containers = vec![c];
            }),
            "pod.init_containers[0].readiness_probe",
            "only allowed on init containers with restart_policy ALWAYS",
        ),
        (
            "ephemeral with liveness probe",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    liveness_probe: Some(probe(1, 3)),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].liveness_probe",
            "not allowed on ephemeral",
        ),
        (
            "ephemeral with readiness probe",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    readiness_probe: Some(probe(1, 3)),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].readiness_probe",
            "not allowed on ephemeral",
        ),
        (
            "grpc probe port 0",
            Box::new(|r| c1(r).liveness_probe = Some(grpc_probe(0, ""))),
            "pod.containers[1].liveness_probe.handler.grpc.port",
            "between 1 and 65535",
        ),
        (
            "grpc probe port beyond 65535",
            Box::new(|r| c1(r).readiness_probe = Some(grpc_probe(65536, ""))),
            "pod.containers[1].readiness_probe.handler.grpc.port",
            "between 1 and 65535",
        ),
        (
            "grpc probe service with a space",
            Box::new(|r| c1(r).startup_probe = Some(grpc_probe(9000, "my service"))),
            "pod.containers[1].startup_probe.handler.grpc.service",
            "whitespace",
        ),
        (
            "grpc probe service too long",
            Box::new(|r| {
                c1(r).liveness_probe = Some(grpc_probe(9000, &"s".repeat(GRPC_SERVICE_MAX + 1)))
            }),
            "pod.containers[1].liveness_probe.handler.grpc.service",
            "at most 4096 bytes",
        ),
        (
            "grpc post-start hook",
            Box::new(|r| {
                c1(r).lifecycle = hook(Action::Grpc(GrpcAction {
                    port: 9000,
                    service: String::new(),
                }))
            }),
            "pod.containers[1].lifecycle.post_start.grpc",
            "not supported as a lifecycle hook",
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
        // ---- uid: one safe path component
        (
            "uid '.'",
            Box::new(|r| meta(r).uid = ".".into()),
            "pod.metadata.uid",
            "'.' or '..'",
        ),
        (
            "uid '..'",
            Box::new(|r| meta(r).uid = "..".into()),
            "pod.metadata.uid",
            "'.' or '..'",
        ),
        (
            "uid with NUL",
            Box::new(|r| meta(r).uid = "a\0b".into()),
            "pod.metadata.uid",
            "only letters, digits",
        ),
        (
            "uid with a colon",
            Box::new(|r| meta(r).uid = "a:b".into()),
            "pod.metadata.uid",
            "only letters, digits",
        ),
        // ---- labels and annotations
        (
            "too many labels",
            Box::new(|r| {
                meta(r).labels = (0..=METADATA_ENTRIES_MAX)
                    .map(|i| (format!("k{i}"), String::new()))
                    .collect()
            }),
            "pod.metadata.labels",
            "at most 1024 entries",
        ),
        (
            "label key invalid",
            Box::new(|r| {
                meta(r).labels.insert("-bad".into(), "v".into());
            }),
            "pod.metadata.labels",
            "qualified name",
        ),
        (
            "label key with empty prefix",
            Box::new(|r| {
                meta(r).labels.insert("/name".into(), "v".into());
            }),
            "pod.metadata.labels",
            "qualified name",
        ),
        (
            "label value too long",
            Box::new(|r| {
                meta(r).labels.insert("k".into(), "v".repeat(64));
            }),
            "pod.metadata.labels",
            "value of \"k\"",
        ),
        (
            "annotation key with NUL",
            Box::new(|r| {
                meta(r).annotations.insert("a\0".into(), "v".into());
            }),
            "pod.metadata.annotations",
            "qualified name",
        ),
        (
            "annotation value with NUL",
            Box::new(|r| {
                meta(r).annotations.insert("a".into(), "v\0".into());
            }),
            "pod.metadata.annotations",
            "NUL",
        ),
        (
            "annotations over 256 KiB",
            Box::new(|r| {
                meta(r)
                    .annotations
                    .insert("a".into(), "v".repeat(METADATA_BYTES_MAX));
            }),
            "pod.metadata.annotations",
            "at most 262144 bytes",
        ),
        // ---- DNS
        (
            "four nameservers",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    servers: vec!["10.0.0.1".into(); 4],
                    ..Default::default()
                })
            }),
            "pod.dns_config.servers",
            "at most 3 items",
        ),
        (
            "nameserver not an IP",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    servers: vec!["dns.example".into()],
                    ..Default::default()
                })
            }),
            "pod.dns_config.servers[0]",
            "IP address",
        ),
        (
            "33 search domains",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    searches: vec!["a.example".into(); 33],
                    ..Default::default()
                })
            }),
            "pod.dns_config.searches",
            "at most 32 items",
        ),
        (
            "search list over 2048 characters",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    searches: vec![format!("{}.xy", "a".repeat(63)); 32],
                    ..Default::default()
                })
            }),
            "pod.dns_config.searches",
            "2048 characters",
        ),
        (
            "search domain invalid",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    searches: vec!["Bad_Domain".into()],
                    ..Default::default()
                })
            }),
            "pod.dns_config.searches[0]",
            "DNS-1123 subdomain",
        ),
        (
            "DNS option with a space",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    options: vec!["ndots: 5".into()],
                    ..Default::default()
                })
            }),
            "pod.dns_config.options[0]",
            "whitespace",
        ),
        (
            "too many DNS options",
            Box::new(|r| {
                pod(r).dns_config = Some(DnsConfig {
                    options: vec!["rotate".into(); DNS_OPTIONS_MAX + 1],
                    ..Default::default()
                })
            }),
            "pod.dns_config.options",
            "at most 32 items",
        ),
        // ---- pod-level fields
        (
            "runtime handler invalid",
            Box::new(|r| pod(r).runtime_handler = "Run C".into()),
            "pod.runtime_handler",
            "DNS-1123 label",
        ),
        (
            "cgroup parent with ..",
            Box::new(|r| pod(r).cgroup_parent = "/kubepods/../x".into()),
            "pod.cgroup_parent",
            "'..'",
        ),
        (
            "cgroup parent with NUL",
            Box::new(|r| pod(r).cgroup_parent = "/kubepods\0".into()),
            "pod.cgroup_parent",
            "NUL",
        ),
        (
            "too many sysctls",
            Box::new(|r| {
                pod(r).sysctls = (0..=SYSCTLS_MAX)
                    .map(|i| (format!("net.x{i}"), "1".into()))
                    .collect()
            }),
            "pod.sysctls",
            "at most 128 items",
        ),
        (
            "sysctl name invalid",
            Box::new(|r| {
                pod(r).sysctls.insert("net..ipv4".into(), "1".into());
            }),
            "pod.sysctls",
            "segments of lower-case",
        ),
        (
            "sysctl value with NUL",
            Box::new(|r| {
                pod(r)
                    .sysctls
                    .insert("net.ipv4.ip_forward".into(), "1\0".into());
            }),
            "pod.sysctls",
            "without NUL",
        ),
        (
            "unknown pod restart policy",
            Box::new(|r| pod(r).restart_policy = 9),
            "pod.restart_policy",
            "unknown enum value 9",
        ),
        (
            "grace period i64::MAX",
            Box::new(|r| pod(r).termination_grace_period_seconds = Some(i64::MAX)),
            "pod.termination_grace_period_seconds",
            "between 0 and 31536000",
        ),
        (
            "too many containers",
            Box::new(|r| {
                pod(r).containers = (0..CONTAINERS_MAX)
                    .map(|i| good_container(&format!("c{i}")))
                    .collect();
                pod(r).init_containers = vec![good_container("init")];
            }),
            "pod.containers",
            "at most 128 containers",
        ),
        // ---- security
        (
            "negative pod run_as_user",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    run_as_user: Some(-1),
                    ..Default::default()
                })
            }),
            "pod.security_context.run_as_user",
            "between 0 and 2147483647",
        ),
        (
            "pod run_as_group beyond 2^31",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    run_as_group: Some(1 << 31),
                    ..Default::default()
                })
            }),
            "pod.security_context.run_as_group",
            "between 0 and 2147483647",
        ),
        (
            "negative fs_group",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    fs_group: Some(-5),
                    ..Default::default()
                })
            }),
            "pod.security_context.fs_group",
            "between 0",
        ),
        (
            "negative supplemental group",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    supplemental_groups: vec![1, -1],
                    ..Default::default()
                })
            }),
            "pod.security_context.supplemental_groups[1]",
            "between 0",
        ),
        (
            "too many supplemental groups",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    supplemental_groups: vec![1; SUPPLEMENTAL_GROUPS_MAX + 1],
                    ..Default::default()
                })
            }),
            "pod.security_context.supplemental_groups",
            "at most 256 items",
        ),
        (
            "service account name not a subdomain",
            Box::new(|r| pod(r).service_account_name = "Build_Bot".into()),
            "pod.service_account_name",
            "subdomain",
        ),
        (
            "pod requests above pod limits",
            Box::new(|r| {
                pod(r).resources = Some(Resources {
                    cpu_request_millis: 600,
                    cpu_limit_millis: 500,
                    ..Default::default()
                })
            }),
            "pod.resources.cpu_request_millis",
            "must be <= cpu_limit_millis",
        ),
        (
            "containers requesting more than the pod's limit",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    memory_request_bytes: 2048,
                    ..Default::default()
                });
                pod(r).resources = Some(Resources {
                    memory_limit_bytes: 1024,
                    ..Default::default()
                })
            }),
            "pod.resources.memory_limit_bytes",
            "at least what the containers request together (2048 bytes)",
        ),
        (
            "a container limit above the pod's",
            Box::new(|r| {
                c1(r).resources = Some(Resources {
                    cpu_limit_millis: 900,
                    cpu_request_millis: 100,
                    ..Default::default()
                });
                pod(r).resources = Some(Resources {
                    cpu_limit_millis: 500,
                    ..Default::default()
                })
            }),
            "pod.containers[1].resources.cpu_limit_millis",
            "must be <= the pod's cpu_limit_millis (500)",
        ),
        (
            "apparmor localhost without a profile",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    apparmor_profile: Some(crate::proto::v1::AppArmorProfile {
                        r#type: app_armor_profile::Type::Localhost as i32,
                        localhost_profile: String::new(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.apparmor_profile.localhost_profile",
            "required",
        ),
        (
            "apparmor profile name with whitespace",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    apparmor_profile: Some(crate::proto::v1::AppArmorProfile {
                        r#type: app_armor_profile::Type::Localhost as i32,
                        localhost_profile: "deny write".into(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.security_context.apparmor_profile.localhost_profile",
            "whitespace",
        ),
        (
            "apparmor runtime default with a profile",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    apparmor_profile: Some(crate::proto::v1::AppArmorProfile {
                        r#type: app_armor_profile::Type::RuntimeDefault as i32,
                        localhost_profile: "x".into(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.security_context.apparmor_profile.localhost_profile",
            "only allowed with TYPE_LOCALHOST",
        ),
        (
            "env resource of a container the pod lacks",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "CPU".into(),
                    value_from: Some(crate::proto::v1::FieldSource {
                        source: Some(field_source::Source::ResourceField(
                            crate::proto::v1::ResourceFieldSource {
                                container_name: "ghost".into(),
                                resource: "limits.cpu".into(),
                                divisor: String::new(),
                            },
                        )),
                    }),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].env[0].value_from.resource_field.container_name",
            "\"ghost\" is neither",
        ),
        (
            "env divisor not a cpu quantity",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "CPU".into(),
                    value_from: Some(crate::proto::v1::FieldSource {
                        source: Some(field_source::Source::ResourceField(
                            crate::proto::v1::ResourceFieldSource {
                                container_name: String::new(),
                                resource: "requests.cpu".into(),
                                divisor: "1Mi".into(),
                            },
                        )),
                    }),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].env[0].value_from.resource_field.divisor",
            "1m, 1",
        ),
        (
            "seccomp localhost escaping",
            Box::new(|r| {
                pod(r).security_context = Some(PodSecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::Localhost as i32,
                        localhost_profile: "../../etc/passwd".into(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.security_context.seccomp_profile.localhost_profile",
            "'..'",
        ),
        (
            "seccomp localhost absolute",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::Localhost as i32,
                        localhost_profile: "/etc/passwd".into(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.seccomp_profile.localhost_profile",
            "relative",
        ),
        (
            "seccomp localhost without a profile",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::Localhost as i32,
                        localhost_profile: String::new(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.seccomp_profile.localhost_profile",
            "required",
        ),
        (
            "seccomp profile without localhost",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::RuntimeDefault as i32,
                        localhost_profile: "p.json".into(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.seccomp_profile.localhost_profile",
            "only allowed with TYPE_LOCALHOST",
        ),
        (
            "seccomp type unknown",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: 42,
                        localhost_profile: String::new(),
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.seccomp_profile.type",
            "unknown enum value 42",
        ),
        (
            "negative container run_as_user",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    run_as_user: Some(-1),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.run_as_user",
            "between 0",
        ),
        (
            "negative container run_as_group",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    run_as_group: Some(-7),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.run_as_group",
            "between 0",
        ),
        (
            "capability name invalid",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    capabilities: Some(Capabilities {
                        add: vec!["NET ADMIN".into()],
                        drop: vec![],
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.capabilities.add[0]",
            "capability name",
        ),
        (
            "too many capabilities",
            Box::new(|r| {
                c1(r).security_context = Some(SecurityContext {
                    capabilities: Some(Capabilities {
                        add: vec![],
                        drop: vec!["ALL".into(); CAPABILITIES_MAX + 1],
                    }),
                    ..Default::default()
                })
            }),
            "pod.containers[1].security_context.capabilities.drop",
            "at most 64 items",
        ),
        // ---- container strings, counts and enums
        (
            "image over 4096 bytes",
            Box::new(|r| c1(r).image = format!("r.test/{}", "a".repeat(TEXT_MAX))),
            "pod.containers[1].image",
            "at most 4096 bytes",
        ),
        (
            "unknown pull policy",
            Box::new(|r| c1(r).image_pull_policy = 7),
            "pod.containers[1].image_pull_policy",
            "unknown enum value 7",
        ),
        (
            "NUL in command",
            Box::new(|r| c1(r).command = vec!["sh\0".into()]),
            "pod.containers[1].command[0]",
            "NUL",
        ),
        (
            "NUL in args",
            Box::new(|r| c1(r).args = vec!["ok".into(), "a\0b".into()]),
            "pod.containers[1].args[1]",
            "NUL",
        ),
        (
            "args element over 128 KiB",
            Box::new(|r| c1(r).args = vec!["a".repeat(ARG_STRLEN_MAX + 1)]),
            "pod.containers[1].args[0]",
            "at most 131072 bytes",
        ),
        (
            "too many args",
            Box::new(|r| c1(r).args = vec![String::new(); ARGS_MAX + 1]),
            "pod.containers[1].args",
            "at most 4096 items",
        ),
        (
            "NUL in working dir",
            Box::new(|r| c1(r).working_dir = "/w\0".into()),
            "pod.containers[1].working_dir",
            "NUL",
        ),
        (
            "env name with NUL",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "A\0".into(),
                    value: String::new(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].env[0].name",
            "letters, digits",
        ),
        (
            "env name starting with a digit",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "1A".into(),
                    value: String::new(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].env[0].name",
            "not start with a digit",
        ),
        (
            "env value with NUL",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "A".into(),
                    value: "x\0y".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].env[0].value",
            "NUL",
        ),
        (
            "too many env vars",
            Box::new(|r| {
                c1(r).env = (0..=ENV_MAX)
                    .map(|i| EnvVar {
                        name: format!("V{i}"),
                        value: String::new(),
                        ..Default::default()
                    })
                    .collect()
            }),
            "pod.containers[1].env",
            "at most 4096 items",
        ),
        (
            "expansion bomb",
            Box::new(|r| {
                c1(r).env = vec![
                    EnvVar {
                        name: "A".into(),
                        value: "a".repeat(1024),
                        ..Default::default()
                    },
                    EnvVar {
                        name: "B".into(),
                        value: "$(A)".repeat(1024),
                        ..Default::default()
                    },
                ]
            }),
            "pod.containers[1].env[1].value",
            "expands to more than 131072 bytes",
        ),
        (
            "expansion over 1 MiB in all",
            Box::new(|r| {
                c1(r).env = vec![EnvVar {
                    name: "A".into(),
                    value: "a".repeat(100 * 1024),
                    ..Default::default()
                }];
                c1(r).args = vec!["$(A)".into(); 10];
            }),
            "pod.containers[1].args[9]",
            "more than 1048576 bytes",
        ),
        (
            "too many mounts",
            Box::new(|r| {
                c1(r).mounts = vec![
                    Mount {
                        container_path: "/d".into(),
                        host_path: "/s".into(),
                        ..Default::default()
                    };
                    MOUNTS_MAX + 1
                ]
            }),
            "pod.containers[1].mounts",
            "at most 256 items",
        ),
        (
            "mount path with NUL",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "/d\0".into(),
                    host_path: "/s".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].container_path",
            "NUL",
        ),
        (
            "mount path over PATH_MAX",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "/d".into(),
                    host_path: "/".repeat(PATH_MAX + 1),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].host_path",
            "at most 4096 bytes",
        ),
        (
            "unknown mount propagation",
            Box::new(|r| {
                c1(r).mounts = vec![Mount {
                    container_path: "/d".into(),
                    host_path: "/s".into(),
                    propagation: 12,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].mounts[0].propagation",
            "unknown enum value 12",
        ),
        (
            "too many devices",
            Box::new(|r| {
                c1(r).devices = vec![
                    Device {
                        container_path: "/dev/x".into(),
                        host_path: "/dev/x".into(),
                        permissions: String::new(),
                    };
                    DEVICES_MAX + 1
                ]
            }),
            "pod.containers[1].devices",
            "at most 256 items",
        ),
        (
            "device permissions too long",
            Box::new(|r| {
                c1(r).devices = vec![Device {
                    container_path: "/dev/x".into(),
                    host_path: "/dev/x".into(),
                    permissions: "rwmr".into(),
                }]
            }),
            "pod.containers[1].devices[0].permissions",
            "at most 3 characters",
        ),
        (
            "too many ports",
            Box::new(|r| {
                c1(r).ports = vec![
                    ContainerPort {
                        container_port: 80,
                        ..Default::default()
                    };
                    PORTS_MAX + 1
                ]
            }),
            "pod.containers[1].ports",
            "at most 256 items",
        ),
        (
            "host ip not an IP",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    container_port: 80,
                    host_ip: "localhost".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].host_ip",
            "IP address",
        ),
        (
            "unknown protocol",
            Box::new(|r| {
                c1(r).ports = vec![ContainerPort {
                    container_port: 80,
                    protocol: 4,
                    ..Default::default()
                }]
            }),
            "pod.containers[1].ports[0].protocol",
            "unknown enum value 4",
        ),
        (
            "unknown container restart policy",
            Box::new(|r| c1(r).restart_policy = 2),
            "pod.containers[1].restart_policy",
            "unknown enum value 2",
        ),
        (
            "termination message path relative",
            Box::new(|r| c1(r).termination_message_path = "log".into()),
            "pod.containers[1].termination_message_path",
            "absolute",
        ),
        (
            "unknown termination message policy",
            Box::new(|r| c1(r).termination_message_policy = 3),
            "pod.containers[1].termination_message_policy",
            "unknown enum value 3",
        ),
        // ---- hooks and probes
        (
            "exec hook with NUL",
            Box::new(|r| {
                c1(r).lifecycle = hook(Action::Exec(ExecAction {
                    command: vec!["a\0".into()],
                }))
            }),
            "pod.containers[1].lifecycle.post_start.exec.command[0]",
            "NUL",
        ),
        (
            "sleep hook of i64::MAX",
            Box::new(|r| c1(r).lifecycle = hook(Action::Sleep(SleepAction { seconds: i64::MAX }))),
            "pod.containers[1].lifecycle.post_start.sleep.seconds",
            "between 0 and 31536000",
        ),
        (
            "http hook path with a newline",
            Box::new(|r| {
                let mut get = http("80");
                if let Action::HttpGet(g) = &mut get {
                    g.path = "/x\r\nHost: evil".into();
                }
                c1(r).lifecycle = hook(get)
            }),
            "pod.containers[1].lifecycle.post_start.http_get.path",
            "control characters",
        ),
        (
            "http header value with CR LF",
            Box::new(|r| {
                let mut get = http("80");
                if let Action::HttpGet(g) = &mut get {
                    g.headers = vec![HttpHeader {
                        name: "X-A".into(),
                        value: "1\r\nX-B: 2".into(),
                    }];
                }
                c1(r).lifecycle = hook(get)
            }),
            "pod.containers[1].lifecycle.post_start.http_get.headers[0].value",
            "CR or LF",
        ),
        (
            "http header name not a token",
            Box::new(|r| {
                let mut get = http("80");
                if let Action::HttpGet(g) = &mut get {
                    g.headers = vec![HttpHeader {
                        name: "X A".into(),
                        value: String::new(),
                    }];
                }
                c1(r).lifecycle = hook(get)
            }),
            "pod.containers[1].lifecycle.post_start.http_get.headers[0].name",
            "HTTP token",
        ),
        (
            "too many http headers",
            Box::new(|r| {
                let mut get = http("80");
                if let Action::HttpGet(g) = &mut get {
                    g.headers = vec![HttpHeader::default(); HTTP_HEADERS_MAX + 1];
                }
                c1(r).lifecycle = hook(get)
            }),
            "pod.containers[1].lifecycle.post_start.http_get.headers",
            "at most 64 items",
        ),
        (
            "probe period 0",
            Box::new(|r| c1(r).startup_probe = Some(probe(0, 3))),
            "pod.containers[1].startup_probe.period_seconds",
            "between 1 and",
        ),
        (
            "probe failure threshold 0",
            Box::new(|r| c1(r).startup_probe = Some(probe(1, 0))),
            "pod.containers[1].startup_probe.failure_threshold",
            "between 1 and 1000000",
        ),
        (
            "probe negative timeout",
            Box::new(|r| {
                c1(r).startup_probe = Some(Probe {
                    timeout_seconds: -1,
                    ..probe(1, 3)
                })
            }),
            "pod.containers[1].startup_probe.timeout_seconds",
            ">= 0",
        ),
        (
            "probe initial delay beyond a year",
            Box::new(|r| {
                c1(r).startup_probe = Some(Probe {
                    initial_delay_seconds: i32::MAX,
                    ..probe(1, 3)
                })
            }),
            "pod.containers[1].startup_probe.initial_delay_seconds",
            "between 0 and 31536000",
        ),
        (
            "tcp probe host with a space",
            Box::new(|r| {
                c1(r).startup_probe = Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::TcpSocket(TcpSocketAction {
                            host: "a b".into(),
                            port: "80".into(),
                        })),
                    }),
                    ..probe(1, 3)
                })
            }),
            "pod.containers[1].startup_probe.handler.tcp_socket.host",
            "whitespace",
        ),
        (
            "port echo is cut",
            Box::new(|r| c1(r).lifecycle = hook(http(&"p".repeat(10_000)))),
            "pod.containers[1].lifecycle.post_start.http_get.port",
            "\"…",
        ),
        (
            "ephemeral target not a label",
            Box::new(|r| {
                pod(r).ephemeral_containers = vec![Container {
                    target_container_name: "A/B".into(),
                    ..good_container("dbg")
                }]
            }),
            "pod.ephemeral_containers[0].target_container_name",
            "DNS-1123 label",
        ),
        // ---- credentials and options
        (
            "credential without a server",
            Box::new(|r| r.credentials = vec![cred("")]),
            "credentials[0].server",
            "required",
        ),
        (
            "credential with only a scheme",
            Box::new(|r| r.credentials = vec![cred("https://")]),
            "credentials[0].server",
            "required",
        ),
        (
            "credential server with a space",
            Box::new(|r| r.credentials = vec![cred("reg .test")]),
            "credentials[0].server",
            "whitespace",
        ),
        (
            "credential password too long",
            Box::new(|r| {
                let mut c = cred("reg.test");
                c.password = "p".repeat(SECRET_MAX + 1);
                r.credentials = vec![c];
            }),
            "credentials[0].password",
            "at most 65536 bytes",
        ),
        (
            "too many credentials",
            Box::new(|r| r.credentials = vec![cred("reg.test"); CREDENTIALS_MAX + 1]),
            "credentials",
            "at most 256 items",
        ),
        (
            "unknown app start mode",
            Box::new(|r| {
                r.options = Some(StartOptions {
                    app_start: 3,
                    ..Default::default()
                })
            }),
            "options.app_start",
            "unknown enum value 3",
        ),
        (
            "init timeout beyond a year",
            Box::new(|r| {
                r.options = Some(StartOptions {
                    init_timeout_seconds: u32::MAX,
                    ..Default::default()
                })
            }),
            "options.init_timeout_seconds",
            "between 0 and 31536000",
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

/// Each limit admits its own value: the rules refuse only what is past it.
#[test]
fn limits_are_inclusive() {
    let mut r = good();
    r.credentials = vec![cred("https://reg.test/v1/"); CREDENTIALS_MAX];
    r.options = Some(StartOptions {
        app_start: AppStartMode::Parallel as i32,
        init_timeout_seconds: SECONDS_MAX as u32,
        ..Default::default()
    });
    let p = pod(&mut r);
    let m = p.metadata.as_mut().expect("metadata");
    m.uid = format!("{}._-", "U".repeat(UID_MAX - 3));
    m.labels = (0..METADATA_ENTRIES_MAX - 1)
        .map(|i| (format!("example.com/k{i}"), format!("v.{i}_x")))
        .collect();
    m.annotations
        .insert("a".into(), "\u{1F600} any text\n".repeat(1000));
    p.dns_config = Some(DnsConfig {
        servers: vec!["10.0.0.10".into(), "fd00::a".into(), "1.1.1.1".into()],
        searches: vec![format!("{}.x.", "a".repeat(60)); DNS_SEARCHES_MAX],
        options: vec!["ndots:5".into(); DNS_OPTIONS_MAX],
    });
    p.runtime_handler = "runc".into();
    p.cgroup_parent = "/kubepods/burstable".into();
    p.sysctls = (0..SYSCTLS_MAX)
        .map(|i| (format!("net/ipv4/x_{i}"), "1 2".into()))
        .collect();
    p.termination_grace_period_seconds = Some(SECONDS_MAX);
    p.restart_policy = RestartPolicy::Never as i32;
    p.security_context = Some(PodSecurityContext {
        run_as_user: Some(0),
        run_as_group: Some(ID_MAX),
        fs_group: Some(ID_MAX),
        supplemental_groups: vec![0; SUPPLEMENTAL_GROUPS_MAX],
        seccomp_profile: Some(SeccompProfile {
            r#type: seccomp_profile::Type::Localhost as i32,
            localhost_profile: "profiles/audit.json".into(),
        }),
        ..Default::default()
    });
    p.containers = (0..CONTAINERS_MAX - 1)
        .map(|i| good_container(&format!("c{i}")))
        .collect();
    p.init_containers = vec![good_container("init")];
    let c = &mut p.containers[1];
    c.env = vec![
        EnvVar {
            name: "A".into(),
            value: "a".repeat(ARG_STRLEN_MAX / 2),
            ..Default::default()
        },
        EnvVar {
            name: "B".into(),
            value: "$(A)$(A)".into(),
            ..Default::default()
        },
        EnvVar {
            name: "_x.y-Z9".into(),
            value: "new\nline".into(),
            ..Default::default()
        },
    ];
    c.args = vec!["$(A)".into(); 3];
    c.working_dir = "relative/is/fine".into();
    c.termination_message_path = "/dev/termination-log".into();
    c.startup_probe = Some(Probe {
        timeout_seconds: 0,
        success_threshold: 0,
        ..probe(1, PROBE_THRESHOLD_MAX)
    });
    c.readiness_probe = Some(Probe {
        success_threshold: PROBE_THRESHOLD_MAX,
        ..probe(1, PROBE_THRESHOLD_MAX)
    });
    c.liveness_probe = Some(grpc_probe(65535, &"s".repeat(GRPC_SERVICE_MAX)));
    c.restart_policy = ContainerRestartPolicy::Unspecified as i32;
    c.security_context = Some(SecurityContext {
        run_as_user: Some(ID_MAX),
        capabilities: Some(Capabilities {
            add: vec!["CAP_NET_ADMIN".into(); CAPABILITIES_MAX],
            drop: vec!["ALL".into()],
        }),
        ..Default::default()
    });
    c.lifecycle = hook(Action::Sleep(SleepAction {
        seconds: SECONDS_MAX,
    }));
    assert_eq!(validate_start_pod(&r), Ok(()));
}

#[test]
fn stop_pod_grace_and_ref() {
    let stop = |uid: &str, grace: Option<i64>| StopPodRequest {
        pod: Some(PodRef {
            uid: uid.into(),
            ..Default::default()
        }),
        grace_period_seconds: grace,
    };
    assert_eq!(validate_stop_pod(&stop("u1", None)), Ok(()));
    assert_eq!(validate_stop_pod(&stop("u1", Some(0))), Ok(()));
    assert_eq!(validate_stop_pod(&stop("u1", Some(SECONDS_MAX))), Ok(()));
    for g in [-1, SECONDS_MAX + 1, i64::MAX, i64::MIN] {
        let e = validate_stop_pod(&stop("u1", Some(g))).unwrap_err();
        assert_eq!(e.field, "grace_period_seconds");
        assert!(e.rule.contains("between 0 and 31536000"), "{e}");
    }
    let e = validate_stop_pod(&StopPodRequest::default()).unwrap_err();
    assert_eq!(e.field, "pod");

    // A 3 MB uid is refused in a short message that does not echo it.
    let e = validate_stop_pod(&stop(&"u".repeat(3 << 20), None)).unwrap_err();
    assert_eq!(e.to_string(), "pod.uid: must be at most 128 characters");
    let e = validate_stop_pod(&stop("..", None)).unwrap_err();
    assert_eq!(e.field, "pod.uid");
}

#[test]
fn pod_ref_parts_follow_their_rules() {
    let r = |uid: &str, namespace: &str, name: &str| PodRef {
        uid: uid.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    let field = |p: PodRef| validate_pod_ref(&p).unwrap_err().field;
    assert_eq!(field(r("a/b", "", "")), "pod.uid");
    assert_eq!(field(r(".", "", "")), "pod.uid");
    assert_eq!(field(r("", "NS", "web")), "pod.namespace");
    assert_eq!(field(r("", "ns", "Web_1")), "pod.name");
    assert_eq!(field(r("u1", "ns", "x".repeat(254).as_str())), "pod.name");
}

#[test]
fn start_container_checks_uid_container_and_credentials() {
    let req = |uid: &str, server: &str| StartContainerRequest {
        pod_uid: uid.into(),
        container: Some(good_container("dbg")),
        credentials: vec![cred(server)],
    };
    assert_eq!(validate_start_container(&req("u1", "reg.test")), Ok(()));
    let e = validate_start_container(&req("..", "reg.test")).unwrap_err();
    assert_eq!(e.field, "pod_uid");
    let e = validate_start_container(&req("u1", "")).unwrap_err();
    assert_eq!(e.field, "credentials[0].server");
    let mut r = req("u1", "reg.test");
    r.container.as_mut().expect("container").env = vec![EnvVar {
        name: "A\0".into(),
        value: String::new(),
        ..Default::default()
    }];
    let e = validate_start_container(&r).unwrap_err();
    assert_eq!(e.field, "container.env[0].name");
}

#[test]
fn echoed_input_is_cut() {
    assert_eq!(echo("abc"), "\"abc\"");
    assert_eq!(echo("a\0b"), "\"a\\0b\"");
    let long = "é".repeat(3 << 20);
    let shown = echo(&long);
    assert_eq!(shown, format!("{:?}…", "é".repeat(ECHO_MAX)));
    assert!(shown.len() < 200);
}

#[test]
fn qualified_names_and_env_names() {
    for ok in ["a", "A.b-c_d", "example.com/x", "a/B"] {
        assert!(is_qualified_name(ok), "{ok}");
    }
    for bad in ["", "/a", "a/", "-a", "a-", "Ex.com/a", &"a".repeat(64)] {
        assert!(!is_qualified_name(bad), "{bad}");
    }
    for ok in ["A", "_a", "-a", ".a", "a.b-c_9", "PATH"] {
        assert!(is_env_var_name(ok), "{ok}");
    }
    for bad in ["", "9a", "a b", "a=b", "a\0", "é"] {
        assert!(!is_env_var_name(bad), "{bad}");
    }
    for ok in ["net.ipv4.ip_forward", "kernel/shm_rmid_forced", "a"] {
        assert!(is_sysctl_name(ok), "{ok}");
    }
    for bad in ["", "net..x", "Net.x", ".x", "x.", "x_"] {
        assert!(!is_sysctl_name(bad), "{bad}");
    }
}

/// The proto documents every limit with the number the code holds.
#[test]
fn the_proto_states_each_limit() {
    let proto = include_str!("../../../proto/podstart/v1/podstart.proto");
    let limits: &[(&str, i64)] = &[
        ("DNS1123_LABEL_MAX", DNS1123_LABEL_MAX as i64),
        ("DNS1123_SUBDOMAIN_MAX", DNS1123_SUBDOMAIN_MAX as i64),
        ("UID_MAX", UID_MAX as i64),
        ("PATH_MAX", PATH_MAX as i64),
        ("TEXT_MAX", TEXT_MAX as i64),
        ("ARG_STRLEN_MAX", ARG_STRLEN_MAX as i64),
        ("EXPANDED_TOTAL_MAX", EXPANDED_TOTAL_MAX as i64),
        ("CONTAINERS_MAX", CONTAINERS_MAX as i64),
        ("ENV_MAX", ENV_MAX as i64),
        ("ARGS_MAX", ARGS_MAX as i64),
        ("MOUNTS_MAX", MOUNTS_MAX as i64),
        ("DEVICES_MAX", DEVICES_MAX as i64),
        ("PORTS_MAX", PORTS_MAX as i64),
        ("HTTP_HEADERS_MAX", HTTP_HEADERS_MAX as i64),
        ("CAPABILITIES_MAX", CAPABILITIES_MAX as i64),
        ("CAPABILITY_NAME_MAX", CAPABILITY_NAME_MAX as i64),
        ("SUPPLEMENTAL_GROUPS_MAX", SUPPLEMENTAL_GROUPS_MAX as i64),
        ("ID_MAX", ID_MAX),
        ("METADATA_ENTRIES_MAX", METADATA_ENTRIES_MAX as i64),
        ("METADATA_BYTES_MAX", METADATA_BYTES_MAX as i64),
        ("QUALIFIED_NAME_MAX", QUALIFIED_NAME_MAX as i64),
        ("DNS_SERVERS_MAX", DNS_SERVERS_MAX as i64),
        ("DNS_SEARCHES_MAX", DNS_SEARCHES_MAX as i64),
        ("DNS_SEARCH_CHARS_MAX", DNS_SEARCH_CHARS_MAX as i64),
        ("DNS_OPTIONS_MAX", DNS_OPTIONS_MAX as i64),
        ("DNS_OPTION_MAX", DNS_OPTION_MAX as i64),
        ("SYSCTLS_MAX", SYSCTLS_MAX as i64),
        ("SYSCTL_NAME_MAX", SYSCTL_NAME_MAX as i64),
        ("CREDENTIALS_MAX", CREDENTIALS_MAX as i64),
        ("SECRET_MAX", SECRET_MAX as i64),
        ("SECONDS_MAX", SECONDS_MAX),
        ("PROBE_THRESHOLD_MAX", i64::from(PROBE_THRESHOLD_MAX)),
        ("GRPC_SERVICE_MAX", GRPC_SERVICE_MAX as i64),
        ("ECHO_MAX", ECHO_MAX as i64),
        ("VOLUMES_MAX", VOLUMES_MAX as i64),
        ("VOLUME_FILES_MAX", VOLUME_FILES_MAX as i64),
    ];
    for (name, n) in limits {
        let pattern = |text: &str| {
            text.match_indices(&n.to_string()).any(|(i, m)| {
                let before = text[..i].chars().next_back();
                let after = text[i + m.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_digit())
                    && !after.is_some_and(|c| c.is_ascii_digit())
            })
        };
        assert!(pattern(proto), "{name} = {n} is not stated in the proto");
    }
}

fn vol(name: &str, source: volume::Source) -> Volume {
    Volume {
        name: name.into(),
        source: Some(source),
    }
}

fn config_files(paths: &[&str]) -> volume::Source {
    volume::Source::Config(crate::proto::v1::ConfigVolume {
        files: paths
            .iter()
            .map(|p| crate::proto::v1::ConfigFile {
                path: p.to_string(),
                data: b"x".to_vec(),
                mode: None,
            })
            .collect(),
        default_mode: None,
        secret: false,
    })
}

fn downward(field: field_source::Source) -> volume::Source {
    volume::Source::DownwardApi(crate::proto::v1::DownwardApiVolume {
        files: vec![crate::proto::v1::DownwardApiFile {
            path: "f".into(),
            source: Some(FieldSource {
                source: Some(field),
            }),
            mode: None,
        }],
        default_mode: None,
    })
}

fn resource(container: &str, resource: &str, divisor: &str) -> field_source::Source {
    field_source::Source::ResourceField(crate::proto::v1::ResourceFieldSource {
        container_name: container.into(),
        resource: resource.into(),
        divisor: divisor.into(),
    })
}

fn mount_of(volume: &str, sub_path: &str) -> Mount {
    Mount {
        container_path: "/data".into(),
        volume_name: volume.into(),
        sub_path: sub_path.into(),
        ..Default::default()
    }
}

fn empty_dir() -> volume::Source {
    volume::Source::EmptyDir(crate::proto::v1::EmptyDirVolume::default())
}

#[test]
fn volumes_and_their_mounts() {
    let app = good().pod.unwrap().containers[0].name.clone();
    let ok: Vec<(&str, Vec<Volume>, Vec<Mount>)> = vec![
        (
            "empty dir with a sub path",
            vec![vol("cache", empty_dir())],
            vec![mount_of("cache", "a/b")],
        ),
        (
            "config tree",
            vec![vol("conf", config_files(&["a/b", "a/c", "d"]))],
            vec![],
        ),
        (
            "downward label",
            vec![vol(
                "info",
                downward(field_source::Source::FieldPath(
                    "metadata.labels['app.kubernetes.io/name']".into(),
                )),
            )],
            vec![],
        ),
        (
            "downward resource",
            vec![vol(
                "info",
                downward(resource(&app, "limits.memory", "1Mi")),
            )],
            vec![],
        ),
        (
            "host path",
            vec![vol(
                "h",
                volume::Source::HostPath(crate::proto::v1::HostPathVolume {
                    path: "/var/log".into(),
                    r#type: 1,
                }),
            )],
            vec![mount_of("h", "")],
        ),
    ];
    for (what, volumes, mounts) in ok {
        let mut r = good();
        pod(&mut r).volumes = volumes;
        c1(&mut r).mounts = mounts;
        assert_eq!(validate_start_pod(&r), Ok(()), "{what}");
    }
    let many: Vec<Volume> = (0..=VOLUMES_MAX)
        .map(|i| vol(&format!("v{i}"), empty_dir()))
        .collect();
    type Refused = (
        &'static str,
        Vec<Volume>,
        Vec<Mount>,
        &'static str,
        &'static str,
    );
    let refused: Vec<Refused> = vec![
        ("too many", many, vec![], "pod.volumes", "at most 256 items"),
        (
            "bad name",
            vec![vol("Cache", empty_dir())],
            vec![],
            "pod.volumes[0].name",
            "DNS-1123 label",
        ),
        (
            "duplicate",
            vec![vol("a", empty_dir()), vol("a", empty_dir())],
            vec![],
            "pod.volumes[1].name",
            "duplicate name",
        ),
        (
            "no source",
            vec![Volume {
                name: "a".into(),
                source: None,
            }],
            vec![],
            "pod.volumes[0]",
            "exactly one source",
        ),
        (
            "unknown volume",
            vec![],
            vec![mount_of("nope", "")],
            "pod.containers[1].mounts[0].volume_name",
            "must name a volume of the pod",
        ),
        (
            "both sources",
            vec![vol("a", empty_dir())],
            vec![Mount {
                host_path: "/x".into(),
                ..mount_of("a", "")
            }],
            "pod.containers[1].mounts[0]",
            "exactly one of host_path and volume_name",
        ),
        (
            "neither",
            vec![],
            vec![Mount {
                container_path: "/x".into(),
                ..Default::default()
            }],
            "pod.containers[1].mounts[0]",
            "exactly one of host_path and volume_name",
        ),
        (
            "sub path up",
            vec![vol("a", empty_dir())],
            vec![mount_of("a", "x/../../etc")],
            "pod.containers[1].mounts[0].sub_path",
            "'..'",
        ),
        (
            "sub path absolute",
            vec![vol("a", empty_dir())],
            vec![mount_of("a", "/etc")],
            "pod.containers[1].mounts[0].sub_path",
            "relative",
        ),
        (
            "sub path with a host path",
            vec![],
            vec![Mount {
                container_path: "/x".into(),
                host_path: "/y".into(),
                sub_path: "z".into(),
                ..Default::default()
            }],
            "pod.containers[1].mounts[0].sub_path",
            "only allowed with volume_name",
        ),
        (
            "config path up",
            vec![vol("c", config_files(&["../x"]))],
            vec![],
            "pod.volumes[0].config.files[0].path",
            "'..'",
        ),
        (
            "config path absolute",
            vec![vol("c", config_files(&["/x"]))],
            vec![],
            "pod.volumes[0].config.files[0].path",
            "relative",
        ),
        (
            "config path hidden",
            vec![vol("c", config_files(&["..data"]))],
            vec![],
            "pod.volumes[0].config.files[0].path",
            "must not start with '..'",
        ),
        (
            "config path twice",
            vec![vol("c", config_files(&["a", "a"]))],
            vec![],
            "pod.volumes[0].config.files[1].path",
            "duplicate path",
        ),
        (
            "config file a directory",
            vec![vol("c", config_files(&["a", "a/b"]))],
            vec![],
            "pod.volumes[0].config.files[1].path",
            "is a file of the volume",
        ),
        (
            "config mode",
            vec![vol(
                "c",
                volume::Source::Config(crate::proto::v1::ConfigVolume {
                    default_mode: Some(0o1777),
                    ..Default::default()
                }),
            )],
            vec![],
            "pod.volumes[0].config.default_mode",
            "between 0 and 0777",
        ),
        (
            "config data",
            vec![vol(
                "c",
                volume::Source::Config(crate::proto::v1::ConfigVolume {
                    files: vec![crate::proto::v1::ConfigFile {
                        path: "big".into(),
                        data: vec![0; CONFIG_DATA_MAX + 1],
                        mode: None,
                    }],
                    ..Default::default()
                }),
            )],
            vec![],
            "pod.volumes[0].config.files",
            "at most 4194304 bytes",
        ),
        (
            "downward spec field",
            vec![vol(
                "d",
                downward(field_source::Source::FieldPath("spec.nodeName".into())),
            )],
            vec![],
            "pod.volumes[0].downward_api.files[0].source.field_path",
            "not supported in a volume",
        ),
        (
            "downward resource without container",
            vec![vol("d", downward(resource("", "limits.cpu", "")))],
            vec![],
            "pod.volumes[0].downward_api.files[0].source.resource_field.container_name",
            "required in a volume",
        ),
        (
            "downward resource of no container",
            vec![vol("d", downward(resource("ghost", "limits.cpu", "")))],
            vec![],
            "pod.volumes[0].downward_api.files[0].source.resource_field.container_name",
            "must name an app or init container",
        ),
        (
            "downward divisor",
            vec![vol("d", downward(resource(&app, "limits.cpu", "100m")))],
            vec![],
            "pod.volumes[0].downward_api.files[0].source.resource_field.divisor",
            "must be 1m or 1",
        ),
        (
            "host path relative",
            vec![vol(
                "h",
                volume::Source::HostPath(crate::proto::v1::HostPathVolume {
                    path: "var".into(),
                    r#type: 0,
                }),
            )],
            vec![],
            "pod.volumes[0].host_path.path",
            "absolute",
        ),
        (
            "host path type",
            vec![vol(
                "h",
                volume::Source::HostPath(crate::proto::v1::HostPathVolume {
                    path: "/var".into(),
                    r#type: 99,
                }),
            )],
            vec![],
            "pod.volumes[0].host_path.type",
            "unknown enum value 99",
        ),
        (
            "size limit",
            vec![vol(
                "e",
                volume::Source::EmptyDir(crate::proto::v1::EmptyDirVolume {
                    medium: 0,
                    size_limit_bytes: Some(-1),
                }),
            )],
            vec![],
            "pod.volumes[0].empty_dir.size_limit_bytes",
            ">= 0",
        ),
    ];
    for (what, volumes, mounts, field, rule) in refused {
        let mut r = good();
        pod(&mut r).volumes = volumes;
        c1(&mut r).mounts = mounts;
        match validate_start_pod(&r) {
            Ok(()) => panic!("{what}: accepted"),
            Err(e) => {
                assert_eq!(e.field, field, "{what}: {e}");
                assert!(e.rule.contains(rule), "{what}: rule {:?}", e.rule);
            }
        }
    }
}
