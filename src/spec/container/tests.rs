use super::*;
use crate::proto::v1::{
    Capabilities, Device, EnvVar, ExecAction, Handler, Lifecycle, Mount, PodMetadata,
    PodSecurityContext, Resources, SecurityContext, handler::Action,
};
use cri::security_profile::ProfileType;

const GIB: i64 = 1 << 30;

/// A node with `memory` bytes and an OOM floor.
fn node(memory: i64, floor: Option<i64>) -> Node {
    let amounts = crate::node::Amounts {
        cpu_millis: 4000,
        memory_bytes: memory,
    };
    Node {
        name: "node-a".into(),
        ips: vec!["192.168.5.10".into()],
        capacity: amounts,
        allocatable: amounts,
        oom_score_adj_floor: floor,
    }
}

static NODE: std::sync::LazyLock<Node> = std::sync::LazyLock::new(|| node(8 * GIB, None));

fn app(name: &str, res: Option<Resources>) -> Container {
    Container {
        name: name.into(),
        image: "busybox:1.36".into(),
        resources: res,
        ..Default::default()
    }
}

fn res(cpu_req: i64, cpu_lim: i64, mem_req: i64, mem_lim: i64) -> Option<Resources> {
    Some(Resources {
        cpu_request_millis: cpu_req,
        cpu_limit_millis: cpu_lim,
        memory_request_bytes: mem_req,
        memory_limit_bytes: mem_lim,
    })
}

fn pod_with(containers: Vec<Container>) -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: "web".into(),
            namespace: "prod".into(),
            uid: "uid-1".into(),
            labels: std::collections::HashMap::from([("app".into(), "web".into())]),
            annotations: std::collections::HashMap::from([("pod-note".into(), "x".into())]),
            ..Default::default()
        }),
        containers,
        ..Default::default()
    }
}

fn config(pod: &PodSpec, idx: usize, restart_count: u32) -> cri::ContainerConfig {
    container_config(&ContainerContext {
        pod,
        container: &pod.containers[idx],
        kind: ContainerKind::App,
        restart_count,
        image: "sha256:abc",
        target_container_id: None,
        mount_sources: &[],
        node: &NODE,
        pod_ips: &[],
    })
}

fn sec(cfg: &cri::ContainerConfig) -> cri::LinuxContainerSecurityContext {
    cfg.linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .expect("security context")
}

#[test]
fn shares_math() {
    let cases = [
        (0, 2),
        (-5, 2),
        (1, 2),
        (2, 2),
        (3, 3),
        (100, 102),
        (250, 256),
        (1000, 1024),
        (256_000, 262_144),
        (300_000, 262_144),
    ];
    for (milli, want) in cases {
        assert_eq!(milli_cpu_to_shares(milli), want, "{milli}m");
    }
}

#[test]
fn quota_math() {
    let cases = [
        (0, 0),
        (1, 1000),
        (5, 1000),
        (10, 1000),
        (250, 25_000),
        (1500, 150_000),
    ];
    for (milli, want) in cases {
        assert_eq!(milli_cpu_to_quota(milli, CPU_PERIOD_US), want, "{milli}m");
    }
}

#[test]
fn resources_table() {
    // (resources, shares, period, quota, memory limit)
    let cases = [
        (None, 2, 0, 0, 0),
        (res(250, 0, 0, 0), 256, 0, 0, 0),
        (res(0, 500, 0, 0), 512, CPU_PERIOD_US, 50_000, 0),
        (res(100, 500, 0, 0), 102, CPU_PERIOD_US, 50_000, 0),
        (res(0, 0, 0, 64 << 20), 2, 0, 0, 64 << 20),
    ];
    for (r, shares, period, quota, mem) in cases {
        let pod = pod_with(vec![app("c", r)]);
        let lr = linux_resources(&pod, &pod.containers[0], ContainerKind::App, &NODE);
        assert_eq!(
            (
                lr.cpu_shares,
                lr.cpu_period,
                lr.cpu_quota,
                lr.memory_limit_in_bytes
            ),
            (shares, period, quota, mem),
            "{r:?}"
        );
    }
}

#[test]
fn qos_classes() {
    let cases = [
        (vec![app("a", None)], QosClass::BestEffort),
        (vec![app("a", res(0, 0, 0, 0))], QosClass::BestEffort),
        (
            vec![app("a", res(100, 100, GIB, GIB))],
            QosClass::Guaranteed,
        ),
        // request defaults to limit
        (vec![app("a", res(0, 100, 0, GIB))], QosClass::Guaranteed),
        (vec![app("a", res(50, 100, GIB, GIB))], QosClass::Burstable),
        (vec![app("a", res(100, 0, 0, 0))], QosClass::Burstable),
        (
            vec![app("a", res(0, 100, 0, GIB)), app("b", None)],
            QosClass::Burstable,
        ),
    ];
    for (containers, want) in cases {
        assert_eq!(
            pod_qos(&pod_with(containers.clone())),
            want,
            "{containers:?}"
        );
    }
}

#[test]
fn oom_scores() {
    let cap = 10 * GIB;
    let kubelet = node(cap, None);
    let restricted = node(cap, Some(0));
    let raised = node(cap, Some(950));
    // (resources, the kubelet's, with a floor of 0, with a floor of 950)
    let cases = [
        (res(100, 100, GIB, GIB), -997, 0, 950),
        (None, 1000, 1000, 1000),
        // Burstable: 1000 - 1000 * 1 GiB / 10 GiB = 900
        (res(100, 0, GIB, 0), 900, 900, 950),
        // tiny request → 999 at most
        (res(100, 0, 1, 0), 999, 999, 999),
        // request above capacity → 3 at least
        (res(100, 0, 20 * GIB, 0), 3, 3, 950),
    ];
    for (r, want, floor_0, floor_950) in cases {
        let pod = pod_with(vec![app("c", r)]);
        let c = &pod.containers[0];
        assert_eq!(
            oom_score_adj(&pod, c, ContainerKind::App, cap),
            want,
            "{r:?}"
        );
        let adj = |n: &Node| linux_resources(&pod, c, ContainerKind::App, n).oom_score_adj;
        assert_eq!(adj(&kubelet), want, "{r:?}");
        assert_eq!(adj(&restricted), floor_0, "{r:?}");
        assert_eq!(adj(&raised), floor_950, "{r:?}");
    }
}

#[test]
fn env_reads_the_pods_fields_and_later_vars_see_them() {
    use crate::proto::v1::{FieldSource, field_source::Source};
    let from = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(FieldSource {
            source: Some(Source::FieldPath(path.into())),
        }),
        ..Default::default()
    };
    let mut c = app("c", None);
    c.env = vec![
        from("POD_IP", "status.podIP"),
        from("APP", "metadata.labels['app']"),
        from("NODE", "spec.nodeName"),
        from("HOST_IP", "status.hostIP"),
        EnvVar {
            name: "URL".into(),
            value: "http://$(POD_IP):80/$(APP)".into(),
            ..Default::default()
        },
        // A field's value is taken as it is, never expanded.
        from("NOTE", "metadata.annotations['pod-note']"),
    ];
    c.command = vec!["echo".into(), "$(NODE)".into()];
    let pod = pod_with(vec![c]);
    let ips = vec!["10.88.0.9".to_string()];
    let cfg = container_config(&ContainerContext {
        pod: &pod,
        container: &pod.containers[0],
        kind: ContainerKind::App,
        restart_count: 0,
        image: "busybox",
        target_container_id: None,
        mount_sources: &[],
        node: &NODE,
        pod_ips: &ips,
    });
    let env: Vec<(&str, &str)> = cfg
        .envs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("POD_IP", "10.88.0.9"),
            ("APP", "web"),
            ("NODE", "node-a"),
            ("HOST_IP", "192.168.5.10"),
            ("URL", "http://10.88.0.9:80/web"),
            ("NOTE", "x"),
        ]
    );
    assert_eq!(cfg.command, ["echo", "node-a"]);
}

#[test]
fn sidecar_oom_capped_by_smallest_app() {
    let cap = 10 * GIB;
    let mut pod = pod_with(vec![
        app("big", res(100, 0, 5 * GIB, 0)),
        app("small", res(100, 0, 2 * GIB, 0)),
    ]);
    pod.init_containers = vec![app("side", res(100, 0, GIB, 0))];
    let side = &pod.init_containers[0];
    // Own score 900, smallest app 800 → 800.
    assert_eq!(oom_score_adj(&pod, side, ContainerKind::Sidecar, cap), 800);
    assert_eq!(oom_score_adj(&pod, side, ContainerKind::Init, cap), 900);
}

#[test]
fn meminfo_parsing() {
    assert_eq!(
        parse_mem_total("MemTotal:       24684084 kB\nMemFree: 1 kB\n"),
        Some(24_684_084 * 1024)
    );
    assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
    assert!(node_memory_bytes() > 0);
}

#[test]
fn basics_log_path_attempt_image() {
    let mut c = app("main", None);
    c.working_dir = "/work".into();
    c.tty = true;
    c.stdin = true;
    c.stdin_once = true;
    let pod = pod_with(vec![c]);
    let cfg = config(&pod, 0, 4);
    assert_eq!(cfg.log_path, "main/4.log");
    let m = cfg.metadata.clone().expect("metadata");
    assert_eq!((m.name.as_str(), m.attempt), ("main", 4));
    let img = cfg.image.clone().expect("image");
    assert_eq!(img.image, "sha256:abc");
    assert_eq!(img.user_specified_image, "busybox:1.36");
    assert_eq!(cfg.working_dir, "/work");
    assert!(cfg.tty && cfg.stdin && cfg.stdin_once);
    assert_eq!(config(&pod, 0, 0).log_path, "main/0.log");
}

#[test]
fn labels_and_annotations() {
    let mut c = app("main", None);
    c.lifecycle = Some(Lifecycle {
        post_start: None,
        pre_stop: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["/bin/sh".into(), "-c".into(), "sleep 1".into()],
            })),
        }),
    });
    let pod = pod_with(vec![c.clone()]);
    let cfg = config(&pod, 0, 2);
    assert_eq!(cfg.labels[labels::POD_NAME], "web");
    assert_eq!(cfg.labels[labels::POD_NAMESPACE], "prod");
    assert_eq!(cfg.labels[labels::POD_UID], "uid-1");
    assert_eq!(cfg.labels[labels::CONTAINER_NAME], "main");
    assert_eq!(cfg.labels[labels::CONTAINER_KIND], "app");
    assert!(!cfg.labels.contains_key("app"));
    assert!(!cfg.annotations.contains_key("pod-note"));
    assert_eq!(cfg.annotations[labels::CONTAINER_RESTART_COUNT], "2");
    // The hash depends on name and image only, so it is stable across
    // restarts and unrelated spec changes.
    let hash = cfg.annotations[labels::CONTAINER_HASH].clone();
    assert_eq!(hash, format!("{:x}", labels::container_hash(&c)));
    let mut changed = pod.clone();
    changed.containers[0].args = vec!["other".into()];
    assert_eq!(
        config(&changed, 0, 7).annotations[labels::CONTAINER_HASH],
        hash
    );
    changed.containers[0].image = "busybox:1.37".into();
    assert_ne!(
        config(&changed, 0, 7).annotations[labels::CONTAINER_HASH],
        hash
    );
    // PreStop survives the trip through the annotations.
    assert_eq!(
        labels::prestop_from_annotations(&cfg.annotations),
        c.lifecycle.and_then(|l| l.pre_stop)
    );
}

#[test]
fn env_command_args_expanded() {
    let mut c = app("main", None);
    c.env = vec![
        EnvVar {
            name: "GREETING".into(),
            value: "hello".into(),
            ..Default::default()
        },
        EnvVar {
            name: "MSG".into(),
            value: "$(GREETING) world".into(),
            ..Default::default()
        },
    ];
    c.command = vec!["/bin/echo".into(), "$(MSG)".into()];
    c.args = vec!["$$(MSG)".into(), "$(UNSET)".into()];
    let pod = pod_with(vec![c]);
    let cfg = config(&pod, 0, 0);
    assert_eq!(cfg.command, vec!["/bin/echo", "hello world"]);
    assert_eq!(cfg.args, vec!["$(MSG)", "$(UNSET)"]);
    let envs: Vec<(&str, &str)> = cfg
        .envs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    assert_eq!(envs, vec![("GREETING", "hello"), ("MSG", "hello world")]);
}

#[test]
fn mounts_and_devices() {
    let mut c = app("main", None);
    c.mounts = vec![
        Mount {
            container_path: "/data".into(),
            host_path: "/srv/data".into(),
            read_only: true,
            propagation: MountPropagation::HostToContainer as i32,
            selinux_relabel: true,
            ..Default::default()
        },
        Mount {
            container_path: "/b".into(),
            host_path: "/hb".into(),
            propagation: MountPropagation::Bidirectional as i32,
            ..Default::default()
        },
        Mount {
            container_path: "/p".into(),
            host_path: "/hp".into(),
            ..Default::default()
        },
    ];
    c.devices = vec![
        Device {
            container_path: "/dev/fuse".into(),
            host_path: "/dev/fuse".into(),
            permissions: String::new(),
        },
        Device {
            container_path: "/dev/x".into(),
            host_path: "/dev/y".into(),
            permissions: "r".into(),
        },
    ];
    let pod = pod_with(vec![c]);
    let cfg = config(&pod, 0, 0);
    let m: Vec<(&str, &str, bool, bool, i32)> = cfg
        .mounts
        .iter()
        .map(|m| {
            (
                m.container_path.as_str(),
                m.host_path.as_str(),
                m.readonly,
                m.selinux_relabel,
                m.propagation,
            )
        })
        .collect();
    use cri::MountPropagation as P;
    assert_eq!(
        m,
        vec![
            (
                "/data",
                "/srv/data",
                true,
                true,
                P::PropagationHostToContainer as i32
            ),
            (
                "/b",
                "/hb",
                false,
                false,
                P::PropagationBidirectional as i32
            ),
            ("/p", "/hp", false, false, P::PropagationPrivate as i32),
        ]
    );
    let d: Vec<&str> = cfg.devices.iter().map(|d| d.permissions.as_str()).collect();
    assert_eq!(d, vec!["rwm", "r"]);
    assert_eq!(cfg.devices[1].host_path, "/dev/y");
}

#[test]
fn security_context_defaults() {
    let pod = pod_with(vec![app("c", None)]);
    let s = sec(&config(&pod, 0, 0));
    assert!(!s.privileged && !s.readonly_rootfs && !s.no_new_privs);
    assert!(s.capabilities.is_none());
    assert!(s.run_as_user.is_none() && s.run_as_group.is_none());
    assert_eq!(s.run_as_username, "");
    let seccomp = s.seccomp.expect("seccomp");
    assert_eq!(seccomp.profile_type, ProfileType::Unconfined as i32);
    let ns = s.namespace_options.expect("ns");
    assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
    assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
    assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
    assert!(s.masked_paths.is_empty() && s.readonly_paths.is_empty());
}

#[test]
fn security_context_container_over_pod() {
    let mut c = app("c", None);
    c.security_context = Some(SecurityContext {
        privileged: Some(true),
        run_as_user: Some(1001),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: vec!["net_admin".into(), "CAP_SYS_TIME".into()],
            drop: vec!["all".into()],
        }),
        seccomp_profile: Some(SeccompProfile {
            r#type: seccomp_profile::Type::Localhost as i32,
            localhost_profile: "/var/lib/seccomp/p.json".into(),
        }),
        ..Default::default()
    });
    let mut pod = pod_with(vec![c]);
    pod.host_network = true;
    pod.host_ipc = true;
    pod.security_context = Some(PodSecurityContext {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        supplemental_groups: vec![7],
        fs_group: Some(2000),
        seccomp_profile: Some(SeccompProfile {
            r#type: seccomp_profile::Type::RuntimeDefault as i32,
            localhost_profile: String::new(),
        }),
        ..Default::default()
    });
    let s = sec(&config(&pod, 0, 0));
    assert!(s.privileged && s.readonly_rootfs && s.no_new_privs);
    assert_eq!(s.run_as_user.map(|v| v.value), Some(1001));
    assert_eq!(s.run_as_group.map(|v| v.value), Some(3000));
    assert_eq!(s.supplemental_groups, vec![2000, 7]);
    let caps = s.capabilities.expect("caps");
    assert_eq!(caps.add_capabilities, vec!["NET_ADMIN", "SYS_TIME"]);
    assert_eq!(caps.drop_capabilities, vec!["ALL"]);
    let seccomp = s.seccomp.expect("seccomp");
    assert_eq!(seccomp.profile_type, ProfileType::Localhost as i32);
    assert_eq!(seccomp.localhost_ref, "/var/lib/seccomp/p.json");
    let ns = s.namespace_options.expect("ns");
    assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
    assert_eq!(ns.ipc, cri::NamespaceMode::Node as i32);

    // Without a container profile the pod's applies.
    pod.containers[0].security_context = None;
    let s = sec(&config(&pod, 0, 0));
    assert_eq!(
        s.seccomp.expect("seccomp").profile_type,
        ProfileType::RuntimeDefault as i32
    );
    assert_eq!(s.run_as_user.map(|v| v.value), Some(1000));
    assert!(!s.no_new_privs);
}

#[test]
fn pid_namespace_modes() {
    let mut pod = pod_with(vec![app("c", None)]);
    pod.ephemeral_containers = vec![app("dbg", None)];
    let eph = |pod: &PodSpec, target: Option<&str>| {
        let cfg = container_config(&ContainerContext {
            pod,
            container: &pod.ephemeral_containers[0],
            kind: ContainerKind::Ephemeral,
            restart_count: 0,
            image: "busybox",
            target_container_id: target,
            mount_sources: &[],
            node: &NODE,
            pod_ips: &[],
        });
        assert_eq!(cfg.labels[labels::CONTAINER_KIND], "ephemeral");
        sec(&cfg).namespace_options.expect("ns")
    };
    let ns = eph(&pod, Some("cid-1"));
    assert_eq!(ns.pid, cri::NamespaceMode::Target as i32);
    assert_eq!(ns.target_id, "cid-1");
    let ns = eph(&pod, None);
    assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
    assert_eq!(ns.target_id, "");
    pod.host_pid = true;
    let ns = eph(&pod, Some("cid-1"));
    assert_eq!(ns.pid, cri::NamespaceMode::Node as i32);
    assert_eq!(ns.target_id, "");
}

#[test]
fn capability_names() {
    let cases = [
        ("net_admin", "NET_ADMIN"),
        ("CAP_NET_ADMIN", "NET_ADMIN"),
        ("cap_chown", "CHOWN"),
        ("ALL", "ALL"),
        ("all", "ALL"),
    ];
    for (input, want) in cases {
        assert_eq!(cri_capability(input), want, "{input}");
    }
}

#[test]
#[allow(deprecated)]
fn apparmor_profiles_fill_both_cri_fields_container_over_pod() {
    use crate::proto::v1::{AppArmorProfile, app_armor_profile::Type};
    let profile = |t: Type, name: &str| {
        Some(AppArmorProfile {
            r#type: t as i32,
            localhost_profile: name.into(),
        })
    };
    // (pod's, container's, CRI type, localhost ref, deprecated string)
    let cases = [
        (None, None, None, "", ""),
        (profile(Type::Unspecified, ""), None, None, "", ""),
        (
            profile(Type::RuntimeDefault, ""),
            None,
            Some(ProfileType::RuntimeDefault),
            "",
            "runtime/default",
        ),
        (
            profile(Type::RuntimeDefault, ""),
            profile(Type::Unconfined, ""),
            Some(ProfileType::Unconfined),
            "",
            "unconfined",
        ),
        (
            None,
            profile(Type::Localhost, "deny-write"),
            Some(ProfileType::Localhost),
            "deny-write",
            "localhost/deny-write",
        ),
    ];
    for (pod_profile, own, want_type, want_ref, want_string) in cases {
        let mut pod = pod_with(vec![app("c", None)]);
        pod.security_context = Some(PodSecurityContext {
            apparmor_profile: pod_profile.clone(),
            ..Default::default()
        });
        pod.containers[0].security_context = Some(SecurityContext {
            apparmor_profile: own.clone(),
            ..Default::default()
        });
        let s = sec(&config(&pod, 0, 0));
        assert_eq!(
            s.apparmor.as_ref().map(|p| (
                ProfileType::try_from(p.profile_type).unwrap(),
                p.localhost_ref.as_str()
            )),
            want_type.map(|t| (t, want_ref)),
            "{pod_profile:?} {own:?}"
        );
        assert_eq!(s.apparmor_profile, want_string, "{pod_profile:?} {own:?}");
    }
}

#[test]
fn pod_level_resources_decide_the_qos_class_and_bound_containers_without_limits() {
    let pod_level = |r: Option<Resources>, containers: Vec<Container>| PodSpec {
        resources: r,
        ..pod_with(containers)
    };
    let cases = [
        // The pod's limits equal to its requests: Guaranteed, whatever the
        // containers say.
        (
            pod_level(res(500, 500, GIB, GIB), vec![app("a", None)]),
            QosClass::Guaranteed,
        ),
        (
            pod_level(res(0, 500, 0, GIB), vec![app("a", res(100, 0, 0, 0))]),
            QosClass::Guaranteed,
        ),
        (
            pod_level(res(250, 500, GIB, GIB), vec![app("a", None)]),
            QosClass::Burstable,
        ),
        (
            pod_level(res(0, 0, GIB, 0), vec![app("a", res(100, 100, GIB, GIB))]),
            QosClass::Burstable,
        ),
        // Unset pod-level resources: the containers decide.
        (
            pod_level(res(0, 0, 0, 0), vec![app("a", res(100, 100, GIB, GIB))]),
            QosClass::Guaranteed,
        ),
    ];
    for (pod, want) in cases {
        assert_eq!(pod_qos(&pod), want, "{:?}", pod.resources);
    }

    let pod = pod_level(
        res(500, 800, GIB, 2 * GIB),
        vec![app("bare", None), app("own", res(100, 200, GIB, GIB))],
    );
    let lr = |i: usize| linux_resources(&pod, &pod.containers[i], ContainerKind::App, &NODE);
    assert_eq!(
        (lr(0).cpu_quota, lr(0).memory_limit_in_bytes),
        (80_000, 2 * GIB)
    );
    assert_eq!(
        (lr(1).cpu_quota, lr(1).memory_limit_in_bytes),
        (20_000, GIB)
    );
}
