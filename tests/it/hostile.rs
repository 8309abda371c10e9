//! Hostile requests through the real gRPC API: each is refused with
//! INVALID_ARGUMENT, a short message naming the field and the rule, and
//! not one CRI call reaches the runtime.

use crate::common::*;
use podstart::pleg::{PlegConfig, SourceChoice};
use podstart::proto::v1::{
    AppStartMode, Capabilities, Container, ContainerPort, Device, DnsConfig, EnvVar, ExecAction,
    GetPodRequest, Handler, HttpGetAction, HttpHeader, Lifecycle, ListPodsRequest, Mount, PodRef,
    PodSecurityContext, PodSpec, Probe, RegistryCredential, SeccompProfile, SecurityContext,
    SleepAction, StartContainerRequest, StartOptions, StartPodRequest, StopPodRequest,
    WatchEventsRequest, handler::Action, seccomp_profile,
};
use std::time::Duration;
use tonic::{Code, Status};

/// Every CRI method the simulated runtime serves.
pub(crate) const CRI_METHODS: &[&str] = &[
    "Version",
    "Status",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "ContainerStatus",
    "ExecSync",
    "GetContainerEvents",
    "ListImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
];

pub(crate) fn cri_calls(h: &Harness) -> Vec<(&'static str, u64)> {
    CRI_METHODS.iter().map(|m| (*m, h.sim.calls(m))).collect()
}

enum Call {
    Start(Box<StartPodRequest>),
    Stop(StopPodRequest),
    Get(GetPodRequest),
    StartContainer(Box<StartContainerRequest>),
    List(ListPodsRequest),
    Watch(WatchEventsRequest),
}

struct Row {
    what: &'static str,
    call: Call,
    field: &'static str,
    rule: &'static str,
}

async fn send(h: &Harness, call: Call) -> Result<(), Status> {
    let mut client = h.client.clone();
    match call {
        Call::Start(r) => client.start_pod(*r).await.map(drop),
        Call::Stop(r) => client.stop_pod(r).await.map(drop),
        Call::Get(r) => client.get_pod(r).await.map(drop),
        Call::StartContainer(r) => client.start_container(*r).await.map(drop),
        Call::List(r) => client.list_pods(r).await.map(drop),
        Call::Watch(r) => client.watch_events(r).await.map(drop),
    }
}

// ---------------------------------------------------------------- builders

fn base() -> PodSpec {
    pod("hostile", "uid-hostile", vec![container("app")])
}

/// StartPod of the base pod changed by `f`.
fn start(f: impl FnOnce(&mut PodSpec)) -> Call {
    let mut p = base();
    f(&mut p);
    Call::Start(Box::new(request(p)))
}

/// StartPod whose app container is changed by `f`.
fn app(f: impl FnOnce(&mut Container)) -> Call {
    start(|p| f(&mut p.containers[0]))
}

/// StartPod whose request (credentials, options) is changed by `f`.
fn start_req(f: impl FnOnce(&mut StartPodRequest)) -> Call {
    let mut r = request(base());
    f(&mut r);
    Call::Start(Box::new(r))
}

fn uid(u: &str) -> Call {
    start(|p| p.metadata.as_mut().unwrap().uid = u.into())
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn pod_security(f: impl FnOnce(&mut PodSecurityContext)) -> Call {
    start(|p| {
        let mut sc = PodSecurityContext::default();
        f(&mut sc);
        p.security_context = Some(sc);
    })
}

fn security(f: impl FnOnce(&mut SecurityContext)) -> Call {
    app(|c| {
        let mut sc = SecurityContext::default();
        f(&mut sc);
        c.security_context = Some(sc);
    })
}

fn dns(f: impl FnOnce(&mut DnsConfig)) -> Call {
    start(|p| {
        let mut d = DnsConfig::default();
        f(&mut d);
        p.dns_config = Some(d);
    })
}

fn seccomp(kind: seccomp_profile::Type, profile: &str) -> Option<SeccompProfile> {
    Some(SeccompProfile {
        r#type: kind as i32,
        localhost_profile: profile.into(),
    })
}

/// A sidecar whose startup probe is changed by `f`.
fn sidecar_probe(f: impl FnOnce(&mut Probe)) -> Call {
    start(|p| {
        let mut s = container("proxy");
        s.restart_policy = podstart::proto::v1::ContainerRestartPolicy::Always as i32;
        let mut probe = Probe {
            handler: Some(Handler {
                action: Some(Action::Exec(ExecAction {
                    command: vec!["true".into()],
                })),
            }),
            period_seconds: 1,
            failure_threshold: 3,
            ..Default::default()
        };
        f(&mut probe);
        s.startup_probe = Some(probe);
        p.init_containers = vec![s];
    })
}

fn post_start(action: Action) -> Call {
    app(|c| {
        c.lifecycle = Some(Lifecycle {
            post_start: Some(Handler {
                action: Some(action),
            }),
            pre_stop: None,
        })
    })
}

fn cred(server: &str) -> RegistryCredential {
    RegistryCredential {
        server: server.into(),
        username: "user".into(),
        password: "secret".into(),
        ..Default::default()
    }
}

fn stop(pod: PodRef, grace: Option<i64>) -> Call {
    Call::Stop(StopPodRequest {
        pod: Some(pod),
        grace_period_seconds: grace,
    })
}

fn by_uid(u: &str) -> PodRef {
    PodRef {
        uid: u.into(),
        ..Default::default()
    }
}

fn get(pod: PodRef) -> Call {
    Call::Get(GetPodRequest { pod: Some(pod) })
}

fn start_container(pod_uid: &str, f: impl FnOnce(&mut StartContainerRequest)) -> Call {
    let mut r = StartContainerRequest {
        pod_uid: pod_uid.into(),
        container: Some(container("debug")),
        credentials: vec![],
    };
    f(&mut r);
    Call::StartContainer(Box::new(r))
}

fn row(what: &'static str, call: Call, field: &'static str, rule: &'static str) -> Row {
    Row {
        what,
        call,
        field,
        rule,
    }
}

const MB3: usize = 3 << 20;

// ---------------------------------------------------------------- the table

// Long: the table, one row per hostile request.
fn rows() -> Vec<Row> {
    vec![
        // ---- pod identity
        row("uid '.'", uid("."), "pod.metadata.uid", "'.' or '..'"),
        row("uid '..'", uid(".."), "pod.metadata.uid", "'.' or '..'"),
        row("uid with '/'", uid("a/b"), "pod.metadata.uid", "'/'"),
        row(
            "uid climbing out",
            uid("../../etc"),
            "pod.metadata.uid",
            "'/'",
        ),
        row(
            "uid of 3 MB",
            uid(&"u".repeat(MB3)),
            "pod.metadata.uid",
            "at most 128",
        ),
        row(
            "uid with NUL",
            uid("a\0b"),
            "pod.metadata.uid",
            "only letters, digits",
        ),
        row(
            "uid with a newline",
            uid("a\nb"),
            "pod.metadata.uid",
            "whitespace",
        ),
        row(
            "name not DNS-1123",
            start(|p| p.metadata.as_mut().unwrap().name = "Bad_Name".into()),
            "pod.metadata.name",
            "DNS-1123 subdomain",
        ),
        row(
            "namespace of 3 MB",
            start(|p| p.metadata.as_mut().unwrap().namespace = "a".repeat(MB3)),
            "pod.metadata.namespace",
            "DNS-1123 label",
        ),
        // ---- env
        row(
            "NUL in an env name",
            app(|c| c.env = vec![env("A\0B", "x")]),
            "pod.containers[0].env[0].name",
            "letters, digits",
        ),
        row(
            "NUL in an env value",
            app(|c| c.env = vec![env("A", "x\0y")]),
            "pod.containers[0].env[0].value",
            "NUL",
        ),
        row(
            "env name starting with a digit",
            app(|c| c.env = vec![env("1A", "x")]),
            "pod.containers[0].env[0].name",
            "not start with a digit",
        ),
        row(
            "env name with '='",
            app(|c| c.env = vec![env("A=B", "x")]),
            "pod.containers[0].env[0].name",
            "'='",
        ),
        row(
            "5,000 env vars",
            app(|c| c.env = (0..5000).map(|i| env(&format!("V{i}"), "")).collect()),
            "pod.containers[0].env",
            "at most 4096 items",
        ),
        row(
            "expansion bomb: A = 1 KiB, B = $(A) x 1024, C = $(B) x 200",
            app(|c| {
                c.env = vec![
                    env("A", &"a".repeat(1024)),
                    env("B", &"$(A)".repeat(1024)),
                    env("C", &"$(B)".repeat(200)),
                ]
            }),
            "pod.containers[0].env[1].value",
            "expands to more than 131072 bytes",
        ),
        row(
            "expansion bomb through args",
            app(|c| {
                c.env = vec![env("A", &"a".repeat(100 * 1024))];
                c.args = vec!["$(A)".into(); 1000];
            }),
            "pod.containers[0].args[9]",
            "more than 1048576 bytes",
        ),
        row(
            "expansion bomb through command",
            app(|c| {
                c.env = vec![env("A", &"a".repeat(64 * 1024))];
                c.command = vec!["$(A)$(A)$(A)".into()];
            }),
            "pod.containers[0].command[0]",
            "expands to more than 131072 bytes",
        ),
        // ---- command, args, paths
        row(
            "NUL in args",
            app(|c| c.args = vec!["ok".into(), "a\0b".into()]),
            "pod.containers[0].args[1]",
            "NUL",
        ),
        row(
            "command element of 200 KiB",
            app(|c| c.command = vec!["c".repeat(200 * 1024)]),
            "pod.containers[0].command[0]",
            "at most 131072 bytes",
        ),
        row(
            "NUL in the working dir",
            app(|c| c.working_dir = "/srv\0".into()),
            "pod.containers[0].working_dir",
            "NUL",
        ),
        row(
            "'..' in a mount host path",
            app(|c| {
                c.mounts = vec![Mount {
                    container_path: "/data".into(),
                    host_path: "/srv/../../etc".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[0].mounts[0].host_path",
            "'..'",
        ),
        row(
            "NUL in a mount path",
            app(|c| {
                c.mounts = vec![Mount {
                    container_path: "/data\0".into(),
                    host_path: "/srv".into(),
                    ..Default::default()
                }]
            }),
            "pod.containers[0].mounts[0].container_path",
            "NUL",
        ),
        row(
            "10,000 mounts",
            app(|c| {
                c.mounts = vec![
                    Mount {
                        container_path: "/d".into(),
                        host_path: "/s".into(),
                        ..Default::default()
                    };
                    10_000
                ]
            }),
            "pod.containers[0].mounts",
            "at most 256 items",
        ),
        row(
            "device permissions of 1 MB",
            app(|c| {
                c.devices = vec![Device {
                    container_path: "/dev/x".into(),
                    host_path: "/dev/x".into(),
                    permissions: "r".repeat(1 << 20),
                }]
            }),
            "pod.containers[0].devices[0].permissions",
            "at most 3 characters",
        ),
        row(
            "relative termination message path",
            app(|c| c.termination_message_path = "../log".into()),
            "pod.containers[0].termination_message_path",
            "absolute",
        ),
        row(
            "'..' in the cgroup parent",
            start(|p| p.cgroup_parent = "/kubepods/../../x".into()),
            "pod.cgroup_parent",
            "'..'",
        ),
        // ---- probes and hooks
        row(
            "probe period_seconds 0",
            sidecar_probe(|p| p.period_seconds = 0),
            "pod.init_containers[0].startup_probe.period_seconds",
            "between 1 and 31536000",
        ),
        row(
            "probe failure_threshold 0",
            sidecar_probe(|p| p.failure_threshold = 0),
            "pod.init_containers[0].startup_probe.failure_threshold",
            "between 1 and 1000000",
        ),
        row(
            "probe timeout -1",
            sidecar_probe(|p| p.timeout_seconds = -1),
            "pod.init_containers[0].startup_probe.timeout_seconds",
            ">= 0",
        ),
        row(
            "probe initial delay i32::MAX",
            sidecar_probe(|p| p.initial_delay_seconds = i32::MAX),
            "pod.init_containers[0].startup_probe.initial_delay_seconds",
            "between 0 and 31536000",
        ),
        row(
            "sleep hook of i64::MAX seconds",
            post_start(Action::Sleep(SleepAction { seconds: i64::MAX })),
            "pod.containers[0].lifecycle.post_start.sleep.seconds",
            "between 0 and 31536000",
        ),
        row(
            "header injection in an HTTP hook",
            post_start(Action::HttpGet(HttpGetAction {
                port: "80".into(),
                headers: vec![HttpHeader {
                    name: "X-A".into(),
                    value: "1\r\nHost: evil".into(),
                }],
                ..Default::default()
            })),
            "pod.containers[0].lifecycle.post_start.http_get.headers[0].value",
            "CR or LF",
        ),
        row(
            "HTTP hook port of 3 MB",
            post_start(Action::HttpGet(HttpGetAction {
                port: "9".repeat(MB3),
                ..Default::default()
            })),
            "pod.containers[0].lifecycle.post_start.http_get.port",
            "is neither",
        ),
        // ---- ids and security
        row(
            "negative pod run_as_user",
            pod_security(|s| s.run_as_user = Some(-1)),
            "pod.security_context.run_as_user",
            "between 0 and 2147483647",
        ),
        row(
            "negative pod run_as_group",
            pod_security(|s| s.run_as_group = Some(-1)),
            "pod.security_context.run_as_group",
            "between 0 and 2147483647",
        ),
        row(
            "negative fs_group",
            pod_security(|s| s.fs_group = Some(i64::MIN)),
            "pod.security_context.fs_group",
            "between 0 and 2147483647",
        ),
        row(
            "negative supplemental group",
            pod_security(|s| s.supplemental_groups = vec![-1]),
            "pod.security_context.supplemental_groups[0]",
            "between 0 and 2147483647",
        ),
        row(
            "negative container run_as_user",
            security(|s| s.run_as_user = Some(-1)),
            "pod.containers[0].security_context.run_as_user",
            "between 0 and 2147483647",
        ),
        row(
            "container run_as_group past 2^31",
            security(|s| s.run_as_group = Some(1 << 32)),
            "pod.containers[0].security_context.run_as_group",
            "between 0 and 2147483647",
        ),
        row(
            "seccomp localhost ../../etc/passwd",
            pod_security(|s| {
                s.seccomp_profile = seccomp(seccomp_profile::Type::Localhost, "../../etc/passwd")
            }),
            "pod.security_context.seccomp_profile.localhost_profile",
            "'..'",
        ),
        row(
            "seccomp localhost /etc/passwd",
            security(|s| {
                s.seccomp_profile = seccomp(seccomp_profile::Type::Localhost, "/etc/passwd")
            }),
            "pod.containers[0].security_context.seccomp_profile.localhost_profile",
            "relative",
        ),
        row(
            "capability with a space",
            security(|s| {
                s.capabilities = Some(Capabilities {
                    add: vec!["SYS ADMIN".into()],
                    drop: vec![],
                })
            }),
            "pod.containers[0].security_context.capabilities.add[0]",
            "capability name",
        ),
        // ---- enums
        row(
            "unknown pod restart policy",
            start(|p| p.restart_policy = 99),
            "pod.restart_policy",
            "unknown enum value 99",
        ),
        row(
            "unknown pull policy",
            app(|c| c.image_pull_policy = 99),
            "pod.containers[0].image_pull_policy",
            "unknown enum value 99",
        ),
        row(
            "unknown container restart policy",
            app(|c| c.restart_policy = -1),
            "pod.containers[0].restart_policy",
            "unknown enum value -1",
        ),
        row(
            "unknown mount propagation",
            app(|c| {
                c.mounts = vec![Mount {
                    container_path: "/d".into(),
                    host_path: "/s".into(),
                    propagation: 99,
                    ..Default::default()
                }]
            }),
            "pod.containers[0].mounts[0].propagation",
            "unknown enum value 99",
        ),
        row(
            "unknown port protocol",
            app(|c| {
                c.ports = vec![ContainerPort {
                    container_port: 80,
                    protocol: 99,
                    ..Default::default()
                }]
            }),
            "pod.containers[0].ports[0].protocol",
            "unknown enum value 99",
        ),
        row(
            "unknown seccomp type",
            security(|s| {
                s.seccomp_profile = Some(SeccompProfile {
                    r#type: 99,
                    localhost_profile: String::new(),
                })
            }),
            "pod.containers[0].security_context.seccomp_profile.type",
            "unknown enum value 99",
        ),
        row(
            "unknown termination message policy",
            app(|c| c.termination_message_policy = 99),
            "pod.containers[0].termination_message_policy",
            "unknown enum value 99",
        ),
        row(
            "unknown app start mode",
            start_req(|r| {
                r.options = Some(StartOptions {
                    app_start: 99,
                    ..Default::default()
                })
            }),
            "options.app_start",
            "unknown enum value 99",
        ),
        // ---- DNS, sysctls, metadata
        row(
            "100,000 DNS servers",
            dns(|d| d.servers = vec!["10.0.0.10".into(); 100_000]),
            "pod.dns_config.servers",
            "at most 3 items",
        ),
        row(
            "DNS server not an IP",
            dns(|d| d.servers = vec!["evil.example".into()]),
            "pod.dns_config.servers[0]",
            "IP address",
        ),
        row(
            "33 DNS searches",
            dns(|d| d.searches = vec!["a.example".into(); 33]),
            "pod.dns_config.searches",
            "at most 32 items",
        ),
        row(
            "DNS search list over 2048 characters",
            dns(|d| d.searches = vec![format!("{}.test", "s".repeat(63)); 32]),
            "pod.dns_config.searches",
            "2048 characters",
        ),
        row(
            "1,000 sysctls",
            start(|p| {
                p.sysctls = (0..1000)
                    .map(|i| (format!("net.x{i}"), "1".into()))
                    .collect()
            }),
            "pod.sysctls",
            "at most 128 items",
        ),
        row(
            "sysctl name climbing out",
            start(|p| {
                p.sysctls.insert("../../proc/x".into(), "1".into());
            }),
            "pod.sysctls",
            "segments of lower-case",
        ),
        row(
            "50,000 labels",
            start(|p| {
                p.metadata.as_mut().unwrap().labels =
                    (0..50_000).map(|i| (format!("k{i}"), "v".into())).collect()
            }),
            "pod.metadata.labels",
            "at most 1024 entries",
        ),
        row(
            "a 300 KiB annotation",
            start(|p| {
                p.metadata
                    .as_mut()
                    .unwrap()
                    .annotations
                    .insert("big".into(), "x".repeat(300 * 1024));
            }),
            "pod.metadata.annotations",
            "at most 262144 bytes",
        ),
        row(
            "label key with NUL",
            start(|p| {
                p.metadata
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert("a\0b".into(), "v".into());
            }),
            "pod.metadata.labels",
            "qualified name",
        ),
        row(
            "runtime handler with a path",
            start(|p| p.runtime_handler = "../runc".into()),
            "pod.runtime_handler",
            "DNS-1123 label",
        ),
        // ---- numbers and counts
        row(
            "terminationGracePeriodSeconds i64::MAX",
            start(|p| p.termination_grace_period_seconds = Some(i64::MAX)),
            "pod.termination_grace_period_seconds",
            "between 0 and 31536000",
        ),
        row(
            "terminationGracePeriodSeconds -1",
            start(|p| p.termination_grace_period_seconds = Some(-1)),
            "pod.termination_grace_period_seconds",
            ">= 0",
        ),
        row(
            "init timeout u32::MAX",
            start_req(|r| {
                r.options = Some(StartOptions {
                    app_start: AppStartMode::Parallel as i32,
                    init_timeout_seconds: u32::MAX,
                    ..Default::default()
                })
            }),
            "options.init_timeout_seconds",
            "between 0 and 31536000",
        ),
        row(
            "10,000 containers",
            start(|p| p.containers = (0..10_000).map(|i| container(&format!("c{i}"))).collect()),
            "pod.containers",
            "at most 128 containers",
        ),
        row(
            "10,000 init containers beside one app",
            start(|p| {
                p.init_containers = (0..10_000).map(|i| container(&format!("i{i}"))).collect()
            }),
            "pod.containers",
            "at most 128 containers",
        ),
        row(
            "image reference of 3 MB",
            app(|c| c.image = format!("registry.test/{}", "a".repeat(MB3))),
            "pod.containers[0].image",
            "at most 4096 bytes",
        ),
        // ---- credentials
        row(
            "credential without a server",
            start_req(|r| r.credentials = vec![cred("")]),
            "credentials[0].server",
            "required",
        ),
        row(
            "credential with only a scheme",
            start_req(|r| r.credentials = vec![cred("https:///")]),
            "credentials[0].server",
            "required",
        ),
        row(
            "credential password of 3 MB",
            start_req(|r| {
                let mut c = cred("registry.test");
                c.password = "p".repeat(MB3);
                r.credentials = vec![c];
            }),
            "credentials[0].password",
            "at most 65536 bytes",
        ),
        // ---- StopPod
        row(
            "StopPod grace_period_seconds i64::MAX",
            stop(by_uid("uid-any"), Some(i64::MAX)),
            "grace_period_seconds",
            "between 0 and 31536000",
        ),
        row(
            "StopPod grace_period_seconds -1",
            stop(by_uid("uid-any"), Some(-1)),
            "grace_period_seconds",
            "between 0 and 31536000",
        ),
        row(
            "StopPod of a 3 MB uid",
            stop(by_uid(&"u".repeat(MB3)), None),
            "pod.uid",
            "at most 128 characters",
        ),
        row(
            "StopPod of '..'",
            stop(by_uid(".."), None),
            "pod.uid",
            "'.' or '..'",
        ),
        row(
            "StopPod of '../x'",
            stop(by_uid("../x"), Some(0)),
            "pod.uid",
            "'/'",
        ),
        row(
            "StopPod naming no pod",
            Call::Stop(StopPodRequest::default()),
            "pod",
            "give the uid, or both namespace and name",
        ),
        row(
            "StopPod by a namespace of 3 MB",
            stop(
                PodRef {
                    namespace: "n".repeat(MB3),
                    name: "web".into(),
                    ..Default::default()
                },
                None,
            ),
            "pod.namespace",
            "DNS-1123 label",
        ),
        // ---- GetPod
        row("GetPod of '.'", get(by_uid(".")), "pod.uid", "'.' or '..'"),
        row(
            "GetPod of a 3 MB uid",
            get(by_uid(&"u".repeat(MB3))),
            "pod.uid",
            "at most 128 characters",
        ),
        row(
            "GetPod by an invalid name",
            get(PodRef {
                namespace: "default".into(),
                name: "a/../b".into(),
                ..Default::default()
            }),
            "pod.name",
            "DNS-1123 subdomain",
        ),
        // ---- ListPods and WatchEvents: their filters reach the runtime
        row(
            "ListPods with 50,000 selector labels",
            Call::List(ListPodsRequest {
                label_selector: (0..50_000).map(|i| (format!("k{i}"), "v".into())).collect(),
                ..Default::default()
            }),
            "label_selector",
            "at most 1024 items",
        ),
        row(
            "ListPods with NUL in a selector key",
            Call::List(ListPodsRequest {
                label_selector: [("app\0".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            "label_selector",
            "qualified name",
        ),
        row(
            "ListPods with a 3 MB selector value",
            Call::List(ListPodsRequest {
                label_selector: [("app".to_string(), "v".repeat(MB3))].into(),
                ..Default::default()
            }),
            "label_selector",
            "at most 63",
        ),
        row(
            "ListPods in namespace '../x'",
            Call::List(ListPodsRequest {
                namespace: "../x".into(),
                ..Default::default()
            }),
            "namespace",
            "DNS-1123 label",
        ),
        row(
            "WatchEvents of pod '..'",
            Call::Watch(WatchEventsRequest {
                pod_uid: "..".into(),
                ..Default::default()
            }),
            "pod_uid",
            "'.' or '..'",
        ),
        row(
            "WatchEvents of a 3 MB namespace",
            Call::Watch(WatchEventsRequest {
                namespace: "n".repeat(MB3),
                ..Default::default()
            }),
            "namespace",
            "DNS-1123 label",
        ),
        // ---- StartContainer
        row(
            "StartContainer into '..'",
            start_container("..", |_| {}),
            "pod_uid",
            "'.' or '..'",
        ),
        row(
            "StartContainer with NUL in an env name",
            start_container("uid-hostile", |r| {
                r.container.as_mut().unwrap().env = vec![env("X\0", "")]
            }),
            "container.env[0].name",
            "letters, digits",
        ),
        row(
            "StartContainer expansion bomb",
            start_container("uid-hostile", |r| {
                r.container.as_mut().unwrap().env =
                    vec![env("A", &"a".repeat(1024)), env("B", &"$(A)".repeat(1024))]
            }),
            "container.env[1].value",
            "expands to more than 131072 bytes",
        ),
        row(
            "StartContainer credential without a server",
            start_container("uid-hostile", |r| r.credentials = vec![cred("")]),
            "credentials[0].server",
            "required",
        ),
        row(
            "StartContainer with ports",
            start_container("uid-hostile", |r| {
                r.container.as_mut().unwrap().ports = vec![ContainerPort {
                    container_port: 80,
                    ..Default::default()
                }]
            }),
            "container.ports",
            "not allowed on ephemeral containers",
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_are_refused_before_the_runtime() {
    // The node's watcher relists once, at start, and not again while the
    // rows run (its periodic relists would be counted as theirs); from
    // there on, every call would be the requests'.
    let h = Harness::with(|t| {
        t.pleg = PlegConfig {
            source: SourceChoice::Relist,
            relist_period: Duration::from_secs(3600),
            ..PlegConfig::default()
        }
    })
    .await;
    h.starter.pleg().synced().await;
    let before = cri_calls(&h);
    let rows = rows();
    assert!(rows.len() >= 60, "{} rows", rows.len());
    for Row {
        what,
        call,
        field,
        rule,
    } in rows
    {
        let status = send(&h, call)
            .await
            .expect_err(&format!("{what}: must be refused"));
        let message = status.message();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{what}: {}",
            &message[..message.len().min(300)]
        );
        assert!(
            message.len() < 1024,
            "{what}: a message of {} bytes",
            message.len()
        );
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{what}: {message:?} should name the field {field:?}"
        );
        assert!(
            message.contains(rule),
            "{what}: {message:?} should state the rule {rule:?}"
        );
        assert!(
            !message.contains("secret"),
            "{what}: a credential leaked: {message:?}"
        );
    }
    assert_eq!(cri_calls(&h), before, "no call reached the runtime");

    // The same harness still starts a well-formed pod: the rows failed for
    // their own reasons.
    let events = h.start(request(base())).await.expect("a valid pod starts");
    assert!(matches!(
        terminal(&events),
        podstart::proto::v1::start_event::Payload::PodStarted(_)
    ));
}
