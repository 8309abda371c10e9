use super::*;

use crate::proto::v1::{
    AppArmorProfile, Capabilities, ContainerPort, ContainerRestartPolicy, Device, Handler,
    HttpGetAction, Lifecycle, Mount, PodMetadata, PodSecurityContext, Probe, SeccompProfile,
    SecurityContext, TcpSocketAction, app_armor_profile, handler, seccomp_profile,
};
use crate::proto::v1::{HostPathVolume, Volume, volume};

const RULE: &str = "rule 2 of /etc/podstart/policy.yaml";

fn grant(level: Level, allow: Allowances) -> Grant {
    Grant {
        level,
        allow,
        rule: RULE.into(),
    }
}

fn apparmor(t: app_armor_profile::Type) -> Option<AppArmorProfile> {
    Some(AppArmorProfile {
        r#type: t as i32,
        localhost_profile: if t == app_armor_profile::Type::Localhost {
            "k8s-apparmor-example-deny-write".into()
        } else {
            String::new()
        },
    })
}

fn seccomp(t: seccomp_profile::Type) -> Option<SeccompProfile> {
    Some(SeccompProfile {
        r#type: t as i32,
        localhost_profile: if t == seccomp_profile::Type::Localhost {
            "profiles/app.json".into()
        } else {
            String::new()
        },
    })
}

/// A container restricted admits on its own: no privilege escalation,
/// every capability dropped.
fn hardened(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "registry.example.com/team/app:1".into(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: vec![],
                drop: vec!["ALL".into()],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod every level admits: non-root and RuntimeDefault seccomp set on
/// the pod, one hardened container "app".
fn restricted_pod() -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: "web".into(),
            namespace: "team-a".into(),
            uid: "u1".into(),
            ..Default::default()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: seccomp(seccomp_profile::Type::RuntimeDefault),
            ..Default::default()
        }),
        containers: vec![hardened("app")],
        ..Default::default()
    }
}

fn app(p: &mut PodSpec) -> &mut Container {
    &mut p.containers[0]
}

fn sc(p: &mut PodSpec) -> &mut SecurityContext {
    app(p).security_context.get_or_insert_default()
}

fn caps(p: &mut PodSpec) -> &mut Capabilities {
    sc(p).capabilities.get_or_insert_default()
}

fn psc(p: &mut PodSpec) -> &mut PodSecurityContext {
    p.security_context.get_or_insert_default()
}

fn mount(host_path: &str) -> Mount {
    Mount {
        container_path: "/data".into(),
        host_path: host_path.into(),
        ..Default::default()
    }
}

fn host_path_volume(name: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        source: Some(volume::Source::HostPath(HostPathVolume {
            path: path.into(),
            r#type: 0,
        })),
    }
}

fn volume_mount(name: &str) -> Mount {
    Mount {
        container_path: format!("/{name}"),
        volume_name: name.into(),
        ..Default::default()
    }
}

fn device(host_path: &str) -> Device {
    Device {
        container_path: "/dev/x".into(),
        host_path: host_path.into(),
        ..Default::default()
    }
}

fn host_port(port: i32) -> ContainerPort {
    ContainerPort {
        container_port: 8080,
        host_port: port,
        ..Default::default()
    }
}

fn http_host(host: &str) -> Option<Handler> {
    Some(Handler {
        action: Some(handler::Action::HttpGet(HttpGetAction {
            host: host.into(),
            port: "8080".into(),
            ..Default::default()
        })),
    })
}

fn tcp_host(host: &str) -> Option<Handler> {
    Some(Handler {
        action: Some(handler::Action::TcpSocket(TcpSocketAction {
            host: host.into(),
            port: "8080".into(),
        })),
    })
}

fn refusal(level: Level, detail: &str) -> Refusal {
    Refusal {
        message: format!(
            "pod \"team-a/web\" violates PodSecurity \"{level}:latest\" (granted by {RULE}): {detail}"
        ),
    }
}

/// One rule: a change to [`restricted_pod`] and what each level says of
/// it: `None` admitted, `Some(failed checks)` refused with exactly them.
struct Row {
    allow: Allowances,
    edit: fn(&mut PodSpec),
    privileged: Option<&'static str>,
    baseline: Option<&'static str>,
    restricted: Option<&'static str>,
}

fn run(row: Row) {
    for (level, want) in [
        (Level::Privileged, row.privileged),
        (Level::Baseline, row.baseline),
        (Level::Restricted, row.restricted),
    ] {
        let mut pod = restricted_pod();
        (row.edit)(&mut pod);
        let got = admit_pod(&grant(level, row.allow.clone()), &pod);
        assert_eq!(
            got,
            want.map_or(Ok(()), |d| Err(refusal(level, d))),
            "at {level}"
        );
    }
}

/// Refused at baseline and restricted alike.
fn baseline_row(edit: fn(&mut PodSpec), detail: &'static str) -> Row {
    Row {
        allow: Allowances::default(),
        edit,
        privileged: None,
        baseline: Some(detail),
        restricted: Some(detail),
    }
}

/// Refused at restricted only.
fn restricted_row(edit: fn(&mut PodSpec), detail: &'static str) -> Row {
    Row {
        allow: Allowances::default(),
        edit,
        privileged: None,
        baseline: None,
        restricted: Some(detail),
    }
}

/// Admitted at every level.
fn admitted_row(allow: Allowances, edit: fn(&mut PodSpec)) -> Row {
    Row {
        allow,
        edit,
        privileged: None,
        baseline: None,
        restricted: None,
    }
}

macro_rules! rules {
    ($($name:ident: $row:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run($row)
            }
        )*
    };
}

rules! {
    // ------------------------------------------------ the baseline checks

    baseline_refuses_privileged: baseline_row(
        |p| sc(p).privileged = Some(true),
        "privileged (container \"app\" must not set securityContext.privileged=true)",
    );
    baseline_admits_privileged_false: admitted_row(
        Allowances::default(),
        |p| sc(p).privileged = Some(false),
    );
    baseline_refuses_host_network: baseline_row(
        |p| p.host_network = true,
        "host namespaces (hostNetwork=true)",
    );
    baseline_refuses_host_pid: baseline_row(
        |p| p.host_pid = true,
        "host namespaces (hostPID=true)",
    );
    baseline_refuses_host_ipc: baseline_row(
        |p| p.host_ipc = true,
        "host namespaces (hostIPC=true)",
    );
    baseline_refuses_every_host_namespace_at_once: baseline_row(
        |p| {
            p.host_network = true;
            p.host_pid = true;
            p.host_ipc = true;
        },
        "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
    );
    baseline_refuses_host_path_mount: Row {
        allow: Allowances::default(),
        edit: |p| app(p).mounts.push(mount("/etc")),
        privileged: None,
        baseline: Some("hostPath volumes (container \"app\" uses host path \"/etc\")"),
        restricted: Some(
            "restricted volume types (container \"app\" uses restricted volume type \
             \"hostPath\": host path \"/etc\")",
        ),
    };
    baseline_refuses_host_path_device: Row {
        allow: Allowances::default(),
        edit: |p| app(p).devices.push(device("/dev/mem")),
        privileged: None,
        baseline: Some("hostPath volumes (container \"app\" uses host path \"/dev/mem\")"),
        restricted: Some(
            "restricted volume types (container \"app\" uses restricted volume type \
             \"hostPath\": host path \"/dev/mem\")",
        ),
    };
    baseline_admits_host_path_under_allowed_prefix: Row {
        allow: Allowances {
            host_path_prefixes: vec!["/var/log".into(), "/dev/fuse".into()],
            ..Default::default()
        },
        edit: |p| {
            app(p).mounts.push(mount("/var/log/pods"));
            app(p).devices.push(device("/dev/fuse"));
        },
        privileged: None,
        baseline: None,
        restricted: Some(
            "restricted volume types (container \"app\" uses restricted volume type \
             \"hostPath\": host paths \"/dev/fuse\", \"/var/log/pods\")",
        ),
    };
    baseline_refuses_host_path_beside_allowed_prefix: Row {
        allow: Allowances {
            host_path_prefixes: vec!["/var/log".into()],
            ..Default::default()
        },
        edit: |p| app(p).mounts.push(mount("/var/logs")),
        privileged: None,
        baseline: Some("hostPath volumes (container \"app\" uses host path \"/var/logs\")"),
        restricted: Some(
            "restricted volume types (container \"app\" uses restricted volume type \
             \"hostPath\": host path \"/var/logs\")",
        ),
    };
    baseline_refuses_host_path_volume: Row {
        allow: Allowances {
            host_path_prefixes: vec!["/var/log".into()],
            ..Default::default()
        },
        edit: |p| {
            p.volumes.push(host_path_volume("logs", "/var/log/pods"));
            p.volumes.push(host_path_volume("etc", "/etc"));
            app(p).mounts.push(volume_mount("etc"));
        },
        privileged: None,
        baseline: Some("hostPath volumes (volume \"etc\" uses host path \"/etc\")"),
        restricted: Some(
            "restricted volume types (volumes \"logs\", \"etc\" use restricted volume type \
             \"hostPath\": host paths \"/etc\", \"/var/log/pods\")",
        ),
    };
    baseline_refuses_host_path_volume_and_mount: Row {
        allow: Allowances::default(),
        edit: |p| {
            p.volumes.push(host_path_volume("root", "/"));
            app(p).mounts.push(mount("/srv"));
        },
        privileged: None,
        baseline: Some(
            "hostPath volumes (volume \"root\" uses host path \"/\"; container \"app\" uses \
             host path \"/srv\")",
        ),
        restricted: Some(
            "restricted volume types (volume \"root\" uses restricted volume type \"hostPath\": \
             host path \"/\"; container \"app\" uses restricted volume type \"hostPath\": host \
             path \"/srv\")",
        ),
    };
    restricted_admits_empty_dir_config_and_downward_volumes: admitted_row(
        Allowances::default(),
        |p| {
            use crate::proto::v1::{ConfigVolume, DownwardApiVolume, EmptyDirVolume};
            for (name, source) in [
                ("cache", volume::Source::EmptyDir(EmptyDirVolume::default())),
                ("conf", volume::Source::Config(ConfigVolume::default())),
                ("info", volume::Source::DownwardApi(DownwardApiVolume::default())),
            ] {
                p.volumes.push(Volume {
                    name: name.into(),
                    source: Some(source),
                });
                app(p).mounts.push(volume_mount(name));
            }
        },
    );
    baseline_refuses_host_port: baseline_row(
        |p| app(p).ports.push(host_port(10250)),
        "hostPort (container \"app\" uses hostPort 10250)",
    );
    baseline_admits_host_port_in_allowed_range: admitted_row(
        Allowances {
            host_ports: vec![PortRange { first: 8000, last: 8100 }],
            ..Default::default()
        },
        |p| app(p).ports.push(host_port(8080)),
    );
    baseline_admits_container_port_without_host_port: admitted_row(
        Allowances::default(),
        |p| app(p).ports.push(host_port(0)),
    );
    baseline_refuses_capability_beyond_default_set: Row {
        allow: Allowances::default(),
        edit: |p| caps(p).add.push("SYS_ADMIN".into()),
        privileged: None,
        baseline: Some(
            "non-default capabilities (container \"app\" must not include \"SYS_ADMIN\" in \
             securityContext.capabilities.add)",
        ),
        restricted: Some(
            "unrestricted capabilities (container \"app\" must not include \"SYS_ADMIN\" in \
             securityContext.capabilities.add)",
        ),
    };
    baseline_admits_capability_of_default_set: restricted_row(
        |p| caps(p).add.push("CHOWN".into()),
        "unrestricted capabilities (container \"app\" must not include \"CHOWN\" in \
         securityContext.capabilities.add)",
    );
    baseline_refuses_unsafe_sysctl: baseline_row(
        |p| {
            p.sysctls.insert("kernel.core_pattern".into(), "|/tmp/x".into());
        },
        "forbidden sysctls (kernel.core_pattern)",
    );
    baseline_admits_safe_sysctl: admitted_row(Allowances::default(), |p| {
        p.sysctls.insert("net.ipv4.tcp_notsent_lowat".into(), "16384".into());
    });
    baseline_refuses_pod_seccomp_unconfined: baseline_row(
        |p| psc(p).seccomp_profile = seccomp(seccomp_profile::Type::Unconfined),
        "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
    );
    baseline_refuses_container_seccomp_unconfined: baseline_row(
        |p| sc(p).seccomp_profile = seccomp(seccomp_profile::Type::Unconfined),
        "seccompProfile (container \"app\" must not set securityContext.seccompProfile.type to \
         \"Unconfined\")",
    );
    baseline_refuses_pod_apparmor_unconfined: baseline_row(
        |p| psc(p).apparmor_profile = apparmor(app_armor_profile::Type::Unconfined),
        "forbidden AppArmor profile (pod must not set appArmorProfile.type to \"Unconfined\")",
    );
    baseline_refuses_container_apparmor_unconfined: baseline_row(
        |p| sc(p).apparmor_profile = apparmor(app_armor_profile::Type::Unconfined),
        "forbidden AppArmor profile (container \"app\" must not set appArmorProfile.type to \
         \"Unconfined\")",
    );
    baseline_admits_apparmor_runtime_default_and_localhost: admitted_row(
        Allowances::default(),
        |p| {
            psc(p).apparmor_profile = apparmor(app_armor_profile::Type::RuntimeDefault);
            sc(p).apparmor_profile = apparmor(app_armor_profile::Type::Localhost);
        },
    );
    baseline_refuses_startup_probe_host: baseline_row(
        |p| {
            app(p).startup_probe = Some(Probe {
                handler: http_host("169.254.169.254"),
                period_seconds: 1,
                failure_threshold: 1,
                ..Default::default()
            })
        },
        "probe or lifecycle host (container \"app\" uses probe or lifecycle host \
         \"169.254.169.254\")",
    );
    baseline_refuses_lifecycle_host: baseline_row(
        |p| {
            app(p).lifecycle = Some(Lifecycle {
                post_start: http_host("kubelet.local"),
                pre_stop: tcp_host("10.0.0.1"),
            })
        },
        "probe or lifecycle host (container \"app\" uses probe or lifecycle hosts \
         \"10.0.0.1\", \"kubelet.local\")",
    );
    baseline_admits_probe_and_lifecycle_without_host: admitted_row(Allowances::default(), |p| {
        app(p).startup_probe = Some(Probe {
            handler: tcp_host(""),
            ..Default::default()
        });
        app(p).lifecycle = Some(Lifecycle {
            post_start: http_host(""),
            pre_stop: None,
        });
    });

    // ---------------------------------------------- the restricted checks

    restricted_refuses_allow_privilege_escalation_unset: restricted_row(
        |p| sc(p).allow_privilege_escalation = None,
        "allowPrivilegeEscalation != false (container \"app\" must set \
         securityContext.allowPrivilegeEscalation=false)",
    );
    restricted_refuses_allow_privilege_escalation_true: restricted_row(
        |p| sc(p).allow_privilege_escalation = Some(true),
        "allowPrivilegeEscalation != false (container \"app\" must set \
         securityContext.allowPrivilegeEscalation=false)",
    );
    restricted_refuses_capabilities_not_dropped: restricted_row(
        |p| caps(p).drop.clear(),
        "unrestricted capabilities (container \"app\" must set \
         securityContext.capabilities.drop=[\"ALL\"])",
    );
    restricted_refuses_no_security_context: restricted_row(
        |p| app(p).security_context = None,
        "allowPrivilegeEscalation != false (container \"app\" must set \
         securityContext.allowPrivilegeEscalation=false), unrestricted capabilities \
         (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"])",
    );
    restricted_admits_net_bind_service: admitted_row(Allowances::default(), |p| {
        caps(p).add.push("NET_BIND_SERVICE".into())
    });
    restricted_refuses_run_as_non_root_unset: restricted_row(
        |p| psc(p).run_as_non_root = None,
        "runAsNonRoot != true (pod or container \"app\" must set \
         securityContext.runAsNonRoot=true)",
    );
    restricted_refuses_container_run_as_non_root_false: restricted_row(
        |p| sc(p).run_as_non_root = Some(false),
        "runAsNonRoot != true (container \"app\" must not set \
         securityContext.runAsNonRoot=false)",
    );
    restricted_refuses_pod_run_as_non_root_false: restricted_row(
        |p| {
            psc(p).run_as_non_root = Some(false);
            sc(p).run_as_non_root = Some(true);
        },
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
    );
    restricted_admits_run_as_non_root_on_every_container: admitted_row(
        Allowances::default(),
        |p| {
            psc(p).run_as_non_root = None;
            sc(p).run_as_non_root = Some(true);
        },
    );
    restricted_refuses_pod_run_as_user_zero: restricted_row(
        |p| psc(p).run_as_user = Some(0),
        "runAsUser=0 (pod must not set runAsUser=0)",
    );
    restricted_refuses_container_run_as_user_zero: restricted_row(
        |p| {
            psc(p).run_as_user = Some(0);
            sc(p).run_as_user = Some(0);
        },
        "runAsUser=0 (pod and container \"app\" must not set runAsUser=0)",
    );
    restricted_admits_non_zero_run_as_user: admitted_row(Allowances::default(), |p| {
        psc(p).run_as_user = Some(1000);
        sc(p).run_as_user = Some(1001);
    });
    restricted_refuses_seccomp_unset: restricted_row(
        |p| psc(p).seccomp_profile = None,
        "seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type \
         to \"RuntimeDefault\" or \"Localhost\")",
    );
    restricted_refuses_seccomp_type_unspecified: restricted_row(
        |p| psc(p).seccomp_profile = seccomp(seccomp_profile::Type::Unspecified),
        "seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type \
         to \"RuntimeDefault\" or \"Localhost\")",
    );
    restricted_admits_seccomp_localhost_on_every_container: admitted_row(
        Allowances::default(),
        |p| {
            psc(p).seccomp_profile = None;
            sc(p).seccomp_profile = seccomp(seccomp_profile::Type::Localhost);
        },
    );
    restricted_admits_container_seccomp_unspecified_under_pod_profile: admitted_row(
        Allowances::default(),
        |p| sc(p).seccomp_profile = seccomp(seccomp_profile::Type::Unspecified),
    );

    // -------------------------------------------------- registries, every level

    every_level_refuses_disallowed_registry: Row {
        allow: Allowances {
            registries: vec!["registry.example.com".into()],
            ..Default::default()
        },
        edit: |p| app(p).image = "quay.io/evil/app:1".into(),
        privileged: Some("disallowed registries (container \"app\" uses registry \"quay.io\")"),
        baseline: Some("disallowed registries (container \"app\" uses registry \"quay.io\")"),
        restricted: Some("disallowed registries (container \"app\" uses registry \"quay.io\")"),
    };
    every_level_refuses_docker_hub_short_name: Row {
        allow: Allowances {
            registries: vec!["*.example.com".into()],
            ..Default::default()
        },
        edit: |p| app(p).image = "busybox".into(),
        privileged: Some("disallowed registries (container \"app\" uses registry \"docker.io\")"),
        baseline: Some("disallowed registries (container \"app\" uses registry \"docker.io\")"),
        restricted: Some("disallowed registries (container \"app\" uses registry \"docker.io\")"),
    };
    every_level_refuses_invalid_image_reference: Row {
        allow: Allowances {
            registries: vec!["*".into()],
            ..Default::default()
        },
        edit: |p| app(p).image = "Not A Reference".into(),
        privileged: Some("disallowed registries (container \"app\" has no valid image reference)"),
        baseline: Some("disallowed registries (container \"app\" has no valid image reference)"),
        restricted: Some(
            "disallowed registries (container \"app\" has no valid image reference)",
        ),
    };
    every_level_admits_allowed_registry_host_any_port: admitted_row(
        Allowances {
            registries: vec!["quay.io".into(), "*.example.com".into()],
            ..Default::default()
        },
        |p| app(p).image = "Registry.Example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
    );
    every_level_admits_registry_with_port_glob: admitted_row(
        Allowances {
            registries: vec!["localhost:5000".into()],
            ..Default::default()
        },
        |p| app(p).image = "localhost:5000/app".into(),
    );
    every_level_admits_docker_hub_when_listed: admitted_row(
        Allowances {
            registries: vec!["docker.io".into()],
            ..Default::default()
        },
        |p| app(p).image = "index.docker.io/library/busybox:1".into(),
    );
}

// ------------------------------------------------------------ the message

#[test]
fn refusal_names_every_failed_check_in_kubernetes_order() {
    let mut pod = restricted_pod();
    sc(&mut pod).privileged = Some(true);
    pod.host_network = true;
    pod.sysctls.insert("vm.swappiness".into(), "0".into());
    pod.sysctls.insert("kernel.msgmax".into(), "1".into());
    caps(&mut pod).add.push("NET_RAW".into());
    let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "non-default capabilities (container \"app\" must not include \"NET_RAW\" in \
             securityContext.capabilities.add), host namespaces (hostNetwork=true), privileged \
             (container \"app\" must not set securityContext.privileged=true), forbidden \
             sysctls (kernel.msgmax, vm.swappiness)"
        ))
    );
}

#[test]
fn refusal_says_which_grant_refused() {
    let mut pod = restricted_pod();
    pod.host_pid = true;
    let mut g = grant(Level::Baseline, Allowances::default());
    g.rule = "the default policy".into();
    let got = admit_pod(&g, &pod).expect_err("refused");
    assert_eq!(
        got.to_string(),
        "pod \"team-a/web\" violates PodSecurity \"baseline:latest\" (granted by the default \
         policy): host namespaces (hostPID=true)"
    );
}

#[test]
fn every_container_list_is_checked_and_named() {
    let mut pod = restricted_pod();
    let mut init = hardened("init");
    let mut sidecar = hardened("sidecar");
    sidecar.restart_policy = ContainerRestartPolicy::Always as i32;
    let mut debug = hardened("debug");
    for c in [&mut init, &mut sidecar, &mut debug] {
        c.security_context.get_or_insert_default().privileged = Some(true);
    }
    pod.init_containers = vec![init, sidecar];
    pod.ephemeral_containers = vec![debug];
    sc(&mut pod).privileged = Some(true);
    pod.containers.push(hardened("quiet"));
    let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "privileged (containers \"init\", \"sidecar\", \"app\", \"debug\" must not set \
             securityContext.privileged=true)"
        ))
    );
}

#[test]
fn plural_forms_follow_the_counts() {
    let mut pod = restricted_pod();
    let mut other = hardened("other");
    other.ports.push(host_port(81));
    other.mounts.push(mount("/srv"));
    other.security_context.get_or_insert_default().run_as_user = Some(0);
    pod.containers.push(other);
    app(&mut pod).ports.push(host_port(80));
    app(&mut pod).mounts.push(mount("/etc"));
    app(&mut pod).image = "evil.io/a".into();
    pod.containers[1].image = "quay.io/b".into();
    let allow = Allowances {
        registries: vec!["registry.example.com".into()],
        ..Default::default()
    };
    let got = admit_pod(&grant(Level::Baseline, allow.clone()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "hostPath volumes (containers \"app\", \"other\" use host paths \"/etc\", \"/srv\"), \
             hostPort (containers \"app\", \"other\" use hostPorts 80, 81), disallowed registries \
             (containers \"app\", \"other\" use registries \"evil.io\", \"quay.io\")"
        ))
    );
    let got = admit_pod(&grant(Level::Restricted, allow), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Restricted,
            "hostPort (containers \"app\", \"other\" use hostPorts 80, 81), restricted volume \
             types (containers \"app\", \"other\" use restricted volume type \"hostPath\": host \
             paths \"/etc\", \"/srv\"), runAsUser=0 (container \"other\" must not set \
             runAsUser=0), disallowed registries (containers \"app\", \"other\" use registries \
             \"evil.io\", \"quay.io\")"
        ))
    );
}

#[test]
fn restricted_names_missing_settings_per_container() {
    let mut pod = restricted_pod();
    pod.security_context = None;
    let mut set = hardened("set");
    let s = set.security_context.get_or_insert_default();
    s.run_as_non_root = Some(true);
    s.seccomp_profile = seccomp(seccomp_profile::Type::RuntimeDefault);
    s.capabilities = Some(Capabilities {
        add: vec!["NET_BIND_SERVICE".into(), "NET_ADMIN".into()],
        drop: vec![],
    });
    pod.containers.push(set);
    pod.containers.push(hardened("bare"));
    let got = admit_pod(&grant(Level::Restricted, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Restricted,
            "unrestricted capabilities (container \"set\" must set \
             securityContext.capabilities.drop=[\"ALL\"]; container \"set\" must not include \
             \"NET_ADMIN\" in securityContext.capabilities.add), runAsNonRoot != true (pod or \
             containers \"app\", \"bare\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or containers \"app\", \"bare\" must set \
             securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ))
    );
}

#[test]
fn restricted_names_pod_and_containers_that_set_bad_values() {
    let mut pod = restricted_pod();
    psc(&mut pod).seccomp_profile = seccomp(seccomp_profile::Type::Unconfined);
    psc(&mut pod).run_as_non_root = Some(false);
    sc(&mut pod).seccomp_profile = seccomp(seccomp_profile::Type::Unconfined);
    sc(&mut pod).run_as_non_root = Some(false);
    pod.containers.push(hardened("inherits"));
    let got = admit_pod(&grant(Level::Restricted, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Restricted,
            "runAsNonRoot != true (pod and container \"app\" must not set \
             securityContext.runAsNonRoot=false), seccompProfile (pod and container \"app\" must \
             not set securityContext.seccompProfile.type to \"Unconfined\")"
        ))
    );
    let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "seccompProfile (pod and container \"app\" must not set \
             securityContext.seccompProfile.type to \"Unconfined\")"
        ))
    );
}

#[test]
fn container_lists_are_capped() {
    let mut pod = restricted_pod();
    pod.containers = (0..128)
        .map(|i| {
            let mut c = hardened(&format!("c{i}"));
            c.security_context.get_or_insert_default().privileged = Some(true);
            c
        })
        .collect();
    let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "privileged (containers \"c0\", \"c1\", \"c2\", \"c3\", \"c4\", \"c5\", \"c6\", \
             \"c7\" (and 120 other containers) must not set securityContext.privileged=true)"
        ))
    );
    pod.containers.truncate(8);
    let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
    assert_eq!(
        got,
        Err(refusal(
            Level::Baseline,
            "privileged (containers \"c0\", \"c1\", \"c2\", \"c3\", \"c4\", \"c5\", \"c6\", \
             \"c7\" must not set securityContext.privileged=true)"
        ))
    );
}

/// The largest pod the API allows, failing every check with the longest
/// values it can, still gets a message of a few KiB.
#[test]
fn message_is_bounded() {
    let long = |i: usize| format!("/{}/{i}", "x".repeat(4000));
    let mut pod = restricted_pod();
    pod.host_network = true;
    pod.security_context = Some(PodSecurityContext {
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        seccomp_profile: seccomp(seccomp_profile::Type::Unconfined),
        ..Default::default()
    });
    pod.sysctls = (0..128)
        .map(|i| (format!("{}.{i}", "k".repeat(240)), "1".into()))
        .collect();
    pod.containers = (0..128)
        .map(|i| Container {
            name: format!("{}{i:03}", "c".repeat(60)),
            image: format!("r{i}.{}.io/app", "e".repeat(200)),
            mounts: (0..256).map(|j| mount(&long(i * 256 + j))).collect(),
            devices: (0..256)
                .map(|j| device(&long(100_000 + i * 256 + j)))
                .collect(),
            ports: (0..256)
                .map(|j| host_port(1 + (i * 256 + j) as i32))
                .collect(),
            startup_probe: Some(Probe {
                handler: http_host(&format!("{}{i}", "h".repeat(250))),
                ..Default::default()
            }),
            security_context: Some(SecurityContext {
                privileged: Some(true),
                run_as_user: Some(0),
                run_as_non_root: Some(false),
                allow_privilege_escalation: Some(true),
                seccomp_profile: seccomp(seccomp_profile::Type::Unconfined),
                capabilities: Some(Capabilities {
                    add: (0..64)
                        .map(|j| format!("{}{i}_{j}", "A".repeat(56)))
                        .collect(),
                    drop: vec![],
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let allow = Allowances {
        registries: vec!["registry.example.com".into()],
        ..Default::default()
    };
    for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
        let got = admit_pod(&grant(level, allow.clone()), &pod).expect_err("refused");
        assert!(
            got.message.len() < 16 * 1024,
            "{level}: {} bytes",
            got.message.len()
        );
        assert!(
            got.message.contains("(and 120 other containers)"),
            "{level}"
        );
    }
}

#[test]
fn privileged_admits_everything_without_registry_globs() {
    let mut pod = restricted_pod();
    pod.host_network = true;
    pod.host_pid = true;
    pod.sysctls.insert("kernel.core_pattern".into(), "x".into());
    pod.security_context = None;
    app(&mut pod).security_context = Some(SecurityContext {
        privileged: Some(true),
        run_as_user: Some(0),
        seccomp_profile: seccomp(seccomp_profile::Type::Unconfined),
        capabilities: Some(Capabilities {
            add: vec!["ALL".into()],
            drop: vec![],
        }),
        ..Default::default()
    });
    app(&mut pod).mounts.push(mount("/"));
    app(&mut pod).ports.push(host_port(10250));
    assert_eq!(
        admit_pod(&grant(Level::Privileged, Allowances::default()), &pod),
        Ok(())
    );
}

// ------------------------------------------------------- capability names

#[test]
fn capabilities_are_read_as_the_runtime_reads_them() {
    let cases: &[(&str, bool)] = &[
        ("CHOWN", true),
        ("chown", true),
        ("CAP_CHOWN", true),
        ("cap_net_bind_service", true),
        ("SYS_ADMIN", false),
        ("cap_sys_admin", false),
        ("ALL", false),
        ("all", false),
        ("NET_RAW", false),
    ];
    for &(cap, baseline_admits) in cases {
        let mut pod = restricted_pod();
        caps(&mut pod).add.push(cap.into());
        let got = admit_pod(&grant(Level::Baseline, Allowances::default()), &pod);
        assert_eq!(got.is_ok(), baseline_admits, "{cap}: {got:?}");
    }
}

#[test]
fn restricted_reads_drop_all_and_net_bind_service_as_the_runtime_does() {
    for (drop, add, admitted) in [
        ("ALL", "NET_BIND_SERVICE", true),
        ("all", "net_bind_service", true),
        ("CAP_ALL", "CAP_NET_BIND_SERVICE", true),
        ("NET_RAW", "NET_BIND_SERVICE", false),
        ("ALL", "CHOWN", false),
    ] {
        let mut pod = restricted_pod();
        *caps(&mut pod) = Capabilities {
            add: vec![add.into()],
            drop: vec!["SETUID".into(), drop.into()],
        };
        let got = admit_pod(&grant(Level::Restricted, Allowances::default()), &pod);
        assert_eq!(got.is_ok(), admitted, "drop {drop} add {add}: {got:?}");
    }
}

// --------------------------------------------------------- allowances

#[test]
fn host_port_ranges_are_inclusive() {
    let allow = Allowances {
        host_ports: vec![
            PortRange { first: 1, last: 1 },
            PortRange {
                first: 8000,
                last: 8100,
            },
        ],
        ..Default::default()
    };
    for (port, admitted) in [
        (1, true),
        (2, false),
        (7999, false),
        (8000, true),
        (8100, true),
        (8101, false),
        (-8000, false),
        (65536 + 8000, false),
    ] {
        for level in [Level::Baseline, Level::Restricted] {
            let mut pod = restricted_pod();
            app(&mut pod).ports.push(host_port(port));
            let got = admit_pod(&grant(level, allow.clone()), &pod);
            assert_eq!(got.is_ok(), admitted, "{level} port {port}: {got:?}");
        }
    }
}

#[test]
fn host_path_prefixes_match_whole_components() {
    let cases: &[(&str, &str, bool)] = &[
        ("/var/log", "/var/log", true),
        ("/var/log/pods/x", "/var/log", true),
        ("/var/logs", "/var/log", false),
        ("/var/log", "/var/log/", true),
        ("/var/log/x", "/var/log/", true),
        ("//var//./log/x/", "/var/log", true),
        ("/var/log/x", "//var/./log", true),
        ("/var", "/var/log", false),
        ("/etc", "/", true),
        ("/", "/", true),
        ("/", "/var", false),
        ("/var/log/x", "var/log", false),
        ("var/log/x", "/var/log", false),
        ("/var/log/../../etc", "/var/log", false),
        ("/var/log/x", "/var/log/..", false),
        ("/var/log/x", "", false),
        ("", "/", false),
    ];
    for &(path, prefix, want) in cases {
        assert_eq!(
            baseline::under_prefix(path, prefix),
            want,
            "{path} under {prefix}"
        );
    }
}

#[test]
fn registry_globs() {
    let cases: &[(&str, &str, bool)] = &[
        ("registry.example.com", "registry.example.com", true),
        ("registry.example.com", "Registry.Example.COM", true),
        ("registry.example.com", "registry.example.co", false),
        ("registry.example.com", "xregistry.example.com", false),
        ("*.corp", "r.corp", true),
        ("*.corp", "a.b.corp", true),
        ("*.corp", "corp", false),
        ("*.corp", "r.corp.evil.io", false),
        ("*", "anything", true),
        ("*", "", true),
        ("", "", true),
        ("", "x", false),
        ("r*.io", "r.io", true),
        ("r*.io", "rx.iox.io", true),
        ("r*.io", "rx.iox", false),
        ("a*b*c", "abbbc", true),
        ("a*b*c", "acb", false),
        ("**", "x", true),
        ("x*", "y", false),
        ("registry.example.co", "registry.example.com", false),
        ("a*b*b", "ab", false),
        ("*ab*b", "xab", false),
        ("*ab*b", "xabb", true),
        ("a*", "a", true),
        ("*a", "ba", true),
        ("*a", "ab", false),
    ];
    for &(glob, text, want) in cases {
        assert_eq!(registry::glob_match(glob, text), want, "{glob} ~ {text}");
    }
}

// ------------------------------------------------ ephemeral containers

#[test]
fn ephemeral_container_is_checked_alone() {
    let mut debug = hardened("debug");
    debug.security_context.get_or_insert_default().privileged = Some(true);
    let got = admit_container(&grant(Level::Baseline, Allowances::default()), &debug);
    assert_eq!(
        got.expect_err("refused").message,
        format!(
            "ephemeral container \"debug\" violates PodSecurity \"baseline:latest\" (granted by \
             {RULE}): privileged (container \"debug\" must not set \
             securityContext.privileged=true)"
        )
    );
    assert_eq!(
        admit_container(&grant(Level::Privileged, Allowances::default()), &debug),
        Ok(())
    );
}

#[test]
fn ephemeral_container_at_restricted_sets_its_own_pod_level_settings() {
    let mut debug = hardened("debug");
    let got = admit_container(&grant(Level::Restricted, Allowances::default()), &debug);
    assert_eq!(
        got.expect_err("refused").message,
        format!(
            "ephemeral container \"debug\" violates PodSecurity \"restricted:latest\" (granted \
             by {RULE}): runAsNonRoot != true (pod or container \"debug\" must set \
             securityContext.runAsNonRoot=true), seccompProfile (pod or container \"debug\" \
             must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \
             \"Localhost\")"
        )
    );
    let s = debug.security_context.get_or_insert_default();
    s.run_as_non_root = Some(true);
    s.seccomp_profile = seccomp(seccomp_profile::Type::RuntimeDefault);
    assert_eq!(
        admit_container(&grant(Level::Restricted, Allowances::default()), &debug),
        Ok(())
    );
}

#[test]
fn ephemeral_container_registry_and_host_paths() {
    let mut debug = hardened("debug");
    debug.image = "docker.io/nicolaka/netshoot".into();
    debug.mounts.push(mount("/var/log/app"));
    let allow = Allowances {
        host_path_prefixes: vec!["/var/log".into()],
        registries: vec!["registry.example.com".into()],
        ..Default::default()
    };
    let got = admit_container(&grant(Level::Baseline, allow.clone()), &debug);
    assert_eq!(
        got.expect_err("refused").message,
        format!(
            "ephemeral container \"debug\" violates PodSecurity \"baseline:latest\" (granted by \
             {RULE}): disallowed registries (container \"debug\" uses registry \"docker.io\")"
        )
    );
    debug.image = "registry.example.com/tools/netshoot".into();
    assert_eq!(
        admit_container(&grant(Level::Baseline, allow), &debug),
        Ok(())
    );
}
