use super::*;
use crate::proto::v1::{Container, DnsConfig, PodSecurityContext};
use cri::security_profile::ProfileType;

fn pod() -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: "web".into(),
            namespace: "prod".into(),
            uid: "uid-1".into(),
            attempt: 2,
            labels: HashMap::from([("app".into(), "web".into())]),
            annotations: HashMap::from([("note".into(), "x".into())]),
        }),
        containers: vec![
            Container {
                name: "a".into(),
                image: "busybox".into(),
                ports: vec![
                    ContainerPort {
                        name: "http".into(),
                        container_port: 80,
                        host_port: 8080,
                        host_ip: "127.0.0.1".into(),
                        protocol: Protocol::Tcp as i32,
                    },
                    ContainerPort {
                        container_port: 53,
                        protocol: Protocol::Udp as i32,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            Container {
                name: "b".into(),
                image: "busybox".into(),
                ports: vec![ContainerPort {
                    container_port: 9000,
                    protocol: Protocol::Sctp as i32,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
        init_containers: vec![Container {
            name: "i".into(),
            ports: vec![ContainerPort {
                container_port: 1234,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn sc(cfg: &cri::PodSandboxConfig) -> cri::LinuxSandboxSecurityContext {
    cfg.linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .expect("security context")
}

#[test]
fn log_dir_layout() {
    let meta = pod().metadata.expect("meta");
    assert_eq!(
        log_directory(Path::new("/var/log/pods"), &meta).unwrap(),
        PathBuf::from("/var/log/pods/prod_web_uid-1")
    );
    let dir = log_directory(Path::new("/tmp/logs"), &meta).unwrap();
    let cfg = pod_sandbox_config(&pod(), &dir);
    assert_eq!(cfg.log_directory, "/tmp/logs/prod_web_uid-1");
    // One component inside the root, whatever the uid says.
    for uid in ["a/../../etc", "x/y", "a\0b"] {
        let mut bad = meta.clone();
        bad.uid = uid.into();
        assert!(
            log_directory(Path::new("/var/log/pods"), &bad).is_err(),
            "{uid:?}"
        );
    }
    let mut dots = meta.clone();
    dots.uid = "..".into();
    assert_eq!(
        log_directory(Path::new("/l"), &dots).unwrap(),
        PathBuf::from("/l/prod_web_..")
    );
}

#[test]
fn metadata_labels_annotations() {
    let cfg = pod_sandbox_config(&pod(), Path::new("/l"));
    let m = cfg.metadata.expect("metadata");
    assert_eq!(
        (
            m.name.as_str(),
            m.namespace.as_str(),
            m.uid.as_str(),
            m.attempt
        ),
        ("web", "prod", "uid-1", 2)
    );
    assert_eq!(cfg.labels[labels::POD_NAME], "web");
    assert_eq!(cfg.labels[labels::POD_NAMESPACE], "prod");
    assert_eq!(cfg.labels[labels::POD_UID], "uid-1");
    assert_eq!(cfg.labels[labels::MANAGED], "true");
    assert_eq!(cfg.labels["app"], "web");
    assert_eq!(
        cfg.annotations,
        HashMap::from([("note".into(), "x".into())])
    );
    assert_eq!(cfg.hostname, "web");
    assert!(cfg.dns_config.is_none());
}

#[test]
fn pod_network_defaults() {
    let cfg = pod_sandbox_config(&pod(), Path::new("/l"));
    let s = sc(&cfg);
    let ns = s.namespace_options.expect("ns");
    assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
    assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
    assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
    assert!(!s.privileged);
    assert!(!s.readonly_rootfs);
    assert_eq!(
        s.seccomp.expect("seccomp").profile_type,
        ProfileType::RuntimeDefault as i32
    );
    assert!(s.run_as_user.is_none());
}

#[test]
fn port_mappings_from_app_containers_only() {
    let cfg = pod_sandbox_config(&pod(), Path::new("/l"));
    let want = vec![
        cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 80,
            host_port: 8080,
            host_ip: "127.0.0.1".into(),
        },
        cri::PortMapping {
            protocol: cri::Protocol::Udp as i32,
            container_port: 53,
            host_port: 0,
            host_ip: String::new(),
        },
        cri::PortMapping {
            protocol: cri::Protocol::Sctp as i32,
            container_port: 9000,
            host_port: 0,
            host_ip: String::new(),
        },
    ];
    assert_eq!(cfg.port_mappings, want);
}

#[test]
fn duplicate_ports_in_one_container_kept_once() {
    let dup = |name: &str| ContainerPort {
        name: name.into(),
        container_port: 80,
        ..Default::default()
    };
    let got = port_mappings(&[dup(""), dup(""), dup("a"), dup("a"), dup("b")], false);
    assert_eq!(got.len(), 3);
}

#[test]
fn host_network() {
    let mut p = pod();
    p.host_network = true;
    p.host_pid = true;
    p.hostname = "custom".into();
    let cfg = pod_sandbox_config(&p, Path::new("/l"));
    assert_eq!(cfg.hostname, "");
    let ns = sc(&cfg).namespace_options.expect("ns");
    assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
    assert_eq!(ns.pid, cri::NamespaceMode::Node as i32);
    assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
    // Host ports default to the container ports; host IPs stay as given.
    let ports: Vec<(i32, i32, &str)> = cfg
        .port_mappings
        .iter()
        .map(|m| (m.container_port, m.host_port, m.host_ip.as_str()))
        .collect();
    assert_eq!(
        ports,
        vec![(80, 8080, "127.0.0.1"), (53, 53, ""), (9000, 9000, "")]
    );
}

#[test]
fn hostname_rules() {
    let a61 = "a".repeat(61);
    let b63 = "b".repeat(63);
    // (hostname, pod name, want)
    let cases = [
        (String::new(), "web".to_string(), "web".to_string()),
        ("h1".into(), "web".into(), "h1".into()),
        (format!("{a61}-.x"), "web".into(), a61.clone()),
        (b63.clone(), "web".into(), b63.clone()),
        (String::new(), format!("{a61}.-.long.name"), a61.clone()),
    ];
    for (hostname, name, want) in cases {
        let mut p = pod();
        p.hostname = hostname.clone();
        if let Some(m) = p.metadata.as_mut() {
            m.name = name;
        }
        assert_eq!(sandbox_hostname(&p), want, "{hostname}");
    }
}

#[test]
fn security_context_from_pod() {
    let mut p = pod();
    p.security_context = Some(PodSecurityContext {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        supplemental_groups: vec![4, 5],
        fs_group: Some(2000),
        ..Default::default()
    });
    p.ephemeral_containers = vec![Container {
        name: "dbg".into(),
        security_context: Some(ContainerSecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }];
    p.cgroup_parent = "/kubepods/pod1".into();
    p.sysctls = HashMap::from([
        ("net/ipv4/ip_unprivileged_port_start".into(), "0".into()),
        ("kernel.shm_rmid_forced".into(), "1".into()),
    ]);
    p.dns_config = Some(DnsConfig {
        servers: vec!["10.0.0.10".into()],
        searches: vec!["svc.local".into()],
        options: vec!["ndots:5".into()],
    });
    let cfg = pod_sandbox_config(&p, Path::new("/l"));
    let s = sc(&cfg);
    assert_eq!(s.run_as_user.map(|v| v.value), Some(1000));
    assert_eq!(s.run_as_group.map(|v| v.value), Some(3000));
    assert_eq!(s.supplemental_groups, vec![2000, 4, 5]);
    assert!(s.privileged, "any container privileged");
    let linux = cfg.linux.expect("linux");
    assert_eq!(linux.cgroup_parent, "/kubepods/pod1");
    assert_eq!(
        linux.sysctls,
        HashMap::from([
            ("net.ipv4.ip_unprivileged_port_start".into(), "0".into()),
            ("kernel.shm_rmid_forced".into(), "1".into()),
        ])
    );
    let dns = cfg.dns_config.expect("dns");
    assert_eq!(dns.servers, vec!["10.0.0.10"]);
    assert_eq!(dns.searches, vec!["svc.local"]);
    assert_eq!(dns.options, vec!["ndots:5"]);
}

#[test]
fn sysctl_name_conversion() {
    let cases = [
        ("net.ipv4.ip_forward", "net.ipv4.ip_forward"),
        ("net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        (
            "net/ipv4/conf/eno2.100/rp_filter",
            "net.ipv4.conf.eno2/100.rp_filter",
        ),
        (
            "net.ipv4.conf.eno2/100.rp_filter",
            "net.ipv4.conf.eno2/100.rp_filter",
        ),
        ("kernel", "kernel"),
    ];
    for (input, want) in cases {
        assert_eq!(sysctl_dots(input), want, "{input}");
    }
}

#[test]
fn pod_ips_rules() {
    let status = |ip: &str, extra: &[&str]| cri::PodSandboxStatus {
        network: Some(cri::PodSandboxNetworkStatus {
            ip: ip.into(),
            additional_ips: extra
                .iter()
                .map(|i| cri::PodIp { ip: (*i).into() })
                .collect(),
        }),
        ..Default::default()
    };
    let cases: Vec<(cri::PodSandboxStatus, bool, Vec<&str>)> = vec![
        (status("10.1.0.5", &[]), false, vec!["10.1.0.5"]),
        (
            status("10.1.0.5", &["fd00::5"]),
            false,
            vec!["10.1.0.5", "fd00::5"],
        ),
        (status("10.1.0.5", &[]), true, vec![]),
        (status("", &[]), false, vec![]),
        (status("not-an-ip", &[]), false, vec![]),
        (status("10.1.0.5", &["bogus"]), false, vec![]),
        (status("10.1.0.5", &[""]), false, vec![]),
        (cri::PodSandboxStatus::default(), false, vec![]),
    ];
    for (s, host, want) in cases {
        assert_eq!(pod_ips(&s, host), want, "{s:?} host={host}");
    }
}
