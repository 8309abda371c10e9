//! Writes the seed corpus of the `start_pod_request` target: the examples'
//! manifests converted, and hand-made requests that reach the rarer parts
//! of validation and conversion. Run from `fuzz/` when the API changes:
//!
//! ```sh
//! cargo run --example seeds -- corpus/start_pod_request ../examples/*.yaml
//! ```
use podstart::cli::manifest::load_manifest;
use podstart::proto::v1::{
    Capabilities, Container, ContainerPort, ContainerRestartPolicy, DnsConfig, EnvVar, ExecAction,
    Handler, HttpGetAction, HttpHeader, Lifecycle, Mount, PodMetadata, PodSecurityContext,
    PodSpec, Probe, Resources, SeccompProfile, SecurityContext, SleepAction, StartPodRequest,
    handler::Action, seccomp_profile,
};
use prost::Message;
use std::path::{Path, PathBuf};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: seeds OUT_DIR [MANIFEST...]"));
    std::fs::create_dir_all(&out).expect("creating the output directory");
    let mut seeds: Vec<(String, StartPodRequest)> = Vec::new();
    for manifest in args {
        let path = Path::new(&manifest);
        let request = load_manifest(path)
            .unwrap_or_else(|e| panic!("{manifest}: {e}"))
            .request;
        let stem = path.file_stem().unwrap().to_string_lossy();
        seeds.push((format!("example-{stem}"), request));
    }
    seeds.extend(hand_made());
    for (name, request) in seeds {
        let file = out.join(format!("{name}.pb"));
        std::fs::write(&file, request.encode_to_vec()).expect("writing a seed");
        println!("{}", file.display());
    }
}

fn pod(name: &str, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }),
        containers,
        ..Default::default()
    }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox:1.36".into(),
        ..Default::default()
    }
}

fn request(pod: PodSpec) -> StartPodRequest {
    StartPodRequest {
        pod: Some(pod),
        ..Default::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(name, value)| EnvVar {
            name: (*name).into(),
            value: (*value).into(),
        })
        .collect()
}

fn hand_made() -> Vec<(String, StartPodRequest)> {
    let minimal = pod("minimal", vec![container("app")]);

    let mut expansion = container("app");
    expansion.env = env(&[
        ("A", "a"),
        ("B", "$(A)-$(A)"),
        ("C", "$(B)$$(B)$(NOPE)$"),
    ]);
    expansion.command = vec!["/bin/$(A)".into(), "-c".into()];
    expansion.args = vec!["echo $(C) $$(C) $(".into()];
    let expansion = pod("expansion", vec![expansion]);

    let mut lifecycle = container("web");
    lifecycle.ports = vec![ContainerPort {
        name: "http".into(),
        container_port: 8080,
        host_port: 30080,
        host_ip: "127.0.0.1".into(),
        protocol: 0,
    }];
    lifecycle.lifecycle = Some(Lifecycle {
        post_start: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["true".into()],
            })),
        }),
        pre_stop: Some(Handler {
            action: Some(Action::HttpGet(HttpGetAction {
                scheme: "HTTP".into(),
                host: String::new(),
                port: "http".into(),
                path: "/quit".into(),
                headers: vec![HttpHeader {
                    name: "X-Stop".into(),
                    value: "1".into(),
                }],
            })),
        }),
    });
    let mut lifecycle = pod("lifecycle", vec![lifecycle]);
    lifecycle.termination_grace_period_seconds = Some(5);

    let mut sidecar = container("proxy");
    sidecar.restart_policy = ContainerRestartPolicy::Always as i32;
    sidecar.startup_probe = Some(Probe {
        handler: Some(Handler {
            action: Some(Action::Sleep(SleepAction { seconds: 1 })),
        }),
        period_seconds: 1,
        failure_threshold: 3,
        ..Default::default()
    });
    let mut debug = container("debug");
    debug.target_container_name = "app".into();
    let mut kinds = pod("kinds", vec![container("app")]);
    kinds.init_containers = vec![container("init"), sidecar];
    kinds.ephemeral_containers = vec![debug];

    let mut secure = container("app");
    secure.resources = Some(Resources {
        cpu_request_millis: 250,
        cpu_limit_millis: 500,
        memory_request_bytes: 64 << 20,
        memory_limit_bytes: 128 << 20,
    });
    secure.security_context = Some(SecurityContext {
        privileged: Some(false),
        run_as_user: Some(1000),
        run_as_group: Some(1000),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: vec!["NET_BIND_SERVICE".into()],
            drop: vec!["ALL".into()],
        }),
        seccomp_profile: Some(SeccompProfile {
            r#type: seccomp_profile::Type::Localhost as i32,
            localhost_profile: "profiles/app.json".into(),
        }),
    });
    secure.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/var/lib/app".into(),
        read_only: true,
        propagation: 1,
        selinux_relabel: true,
    }];
    let mut secure = pod("secure", vec![secure]);
    secure.security_context = Some(PodSecurityContext {
        run_as_user: Some(1000),
        supplemental_groups: vec![2000, 3000],
        fs_group: Some(2000),
        ..Default::default()
    });

    let mut network = pod("network", vec![container("app")]);
    network.hostname = "host-name".into();
    network.subdomain = "sub".into();
    network.dns_config = Some(DnsConfig {
        servers: vec!["10.0.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    network.sysctls = [("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())]
        .into_iter()
        .collect();

    let mut host = pod("host", vec![container("app")]);
    host.host_network = true;
    host.host_pid = true;
    host.host_ipc = true;

    [
        ("minimal", minimal),
        ("expansion", expansion),
        ("lifecycle", lifecycle),
        ("kinds", kinds),
        ("secure", secure),
        ("network", network),
        ("host", host),
    ]
    .into_iter()
    .map(|(name, pod)| (name.to_string(), request(pod)))
    .collect()
}
