//! End-to-end tests: the `podstart` binary serving against a real
//! containerd, runc and CNI with a loopback registry
//! (scripts/containerd-lab.sh). Each is `#[ignore]`d, so a plain
//! `cargo test` never runs them; scripts/test.sh brings the lab up and runs
//! them with `--ignored`, PODSTART_E2E_RUNTIME naming the lab's CRI
//! endpoint. Without it they skip, unless PODSTART_E2E_REQUIRED=1 (as in
//! CI): then a missing lab is a failure, never a silent skip.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, ContainerKind, ContainerRestartPolicy, ContainerState, ExecAction, GetPodRequest,
    Handler, Lifecycle, PodMetadata, PodRef, PodSpec, Probe, PullPolicy, RestartPolicy,
    StartContainerRequest, StartEvent, StartPodRequest, StopPodRequest, WatchEventsRequest,
    handler::Action, pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::telemetry::Metrics;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

#[path = "../it/certs.rs"]
mod certs;
mod fields;
// Fresh random layers on the lab's big-N images, so that no other pod on
// the lab holds what a pull test must fetch.
#[path = "../../benches/labkit/fresh_images.rs"]
mod fresh_images;
#[path = "../it/net.rs"]
mod net;
mod probes;
#[path = "../it/process.rs"]
mod process;
mod volumes;
mod watch;

use process::{Proc, podstart_bin, sigterm, wait_for};

struct Lab {
    runtime: String,
    image: String,
}

fn lab() -> Option<Lab> {
    match std::env::var("PODSTART_E2E_RUNTIME") {
        Ok(runtime) if !runtime.is_empty() => Some(Lab {
            runtime,
            image: std::env::var("PODSTART_E2E_TEST_IMAGE")
                .unwrap_or_else(|_| "localhost/podstart-lab/busybox:latest".into()),
        }),
        _ => {
            assert!(
                std::env::var("PODSTART_E2E_REQUIRED").as_deref() != Ok("1"),
                "PODSTART_E2E_REQUIRED=1 but PODSTART_E2E_RUNTIME is not set: the containerd lab is missing"
            );
            eprintln!("skipping: PODSTART_E2E_RUNTIME is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A `podstart serve` process with its own socket and log root.
struct Daemon {
    child: Proc,
    socket: PathBuf,
    /// The metrics port (`/metrics`, `/readyz`).
    metrics: String,
    log_root: PathBuf,
    /// `--pod-volume-root`.
    volume_root: PathBuf,
    client: PodStarterClient<Channel>,
    cri: Cri,
    /// The `serve` command line, for a restart.
    args: Vec<std::ffi::OsString>,
    _dir: tempfile::TempDir,
}

/// `podstart` with `args`, its log (stderr) in `log`; returns once it
/// serves on `socket`.
async fn spawn_daemon(args: &[std::ffi::OsString], log: Option<&Path>, socket: &Path) -> Proc {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::inherit(),
    };
    let child = Command::new(podstart_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn podstart serve");
    let child = Proc(child);
    wait_for(
        || std::os::unix::net::UnixStream::connect(socket).is_ok(),
        "podstart to create its socket",
        Duration::from_secs(20),
    )
    .await;
    child
}

impl Drop for Daemon {
    /// SIGTERM, time to drain, then `Proc` kills whatever is left.
    fn drop(&mut self) {
        sigterm(&self.child.0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Daemon {
    async fn start(lab: &Lab) -> Daemon {
        Daemon::start_with(lab, &[], None).await
    }

    /// With extra `serve` flags, and the daemon's log (stderr) in `log`.
    async fn start_with(lab: &Lab, extra: &[&str], log: Option<&Path>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podstart.sock");
        let log_root = dir.path().join("pods");
        let metrics = format!("127.0.0.1:{}", net::free_port());
        let mut args: Vec<std::ffi::OsString> = vec![
            "serve".into(),
            "--runtime-endpoint".into(),
            lab.runtime.clone().into(),
            "--listen".into(),
            format!("unix://{}", socket.display()).into(),
            "--pod-log-root".into(),
            log_root.clone().into(),
            "--pod-state-root".into(),
            dir.path().join("state").into(),
            "--pod-volume-root".into(),
            dir.path().join("volumes").into(),
            "--metrics-listen".into(),
            metrics.clone().into(),
            // The lab's runtime cannot lower OOM scores (no CAP_SYS_RESOURCE).
            "--restrict-oom-score-adj".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let child = spawn_daemon(&args, log, &socket).await;
        let channel =
            podstart::endpoint::channel(&Address::Unix(socket.clone()), Peer::Podstart).unwrap();
        let runtime = Address::parse(&lab.runtime, Peer::Runtime).unwrap();
        let cri = Cri::new(
            &runtime,
            &runtime,
            CriSettings::default(),
            Metrics::new().unwrap(),
        )
        .unwrap();
        Daemon {
            child,
            socket,
            metrics,
            log_root,
            volume_root: dir.path().join("volumes"),
            client: PodStarterClient::new(channel),
            cri,
            args,
            _dir: dir,
        }
    }

    /// `kill -9` of the daemon, then the same command line again (its log
    /// in `log`); the pods it started stay with the runtime.
    async fn kill_and_restart(&mut self, log: Option<&Path>) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        self.child = spawn_daemon(&self.args, log, &self.socket).await;
        let channel =
            podstart::endpoint::channel(&Address::Unix(self.socket.clone()), Peer::Podstart)
                .unwrap();
        self.client = PodStarterClient::new(channel);
    }

    async fn start_pod(&self, pod: PodSpec) -> Vec<StartEvent> {
        self.start_request(StartPodRequest {
            pod: Some(pod),
            ..Default::default()
        })
        .await
    }

    async fn start_request(&self, req: StartPodRequest) -> Vec<StartEvent> {
        let stream = self
            .client
            .clone()
            .start_pod(req)
            .await
            .expect("StartPod accepted")
            .into_inner();
        collect(stream).await
    }

    async fn stop_pod(&self, uid: &str) -> Vec<StartEvent> {
        let stream = self
            .client
            .clone()
            .stop_pod(StopPodRequest {
                pod: Some(PodRef {
                    uid: uid.into(),
                    ..Default::default()
                }),
                grace_period_seconds: Some(1),
            })
            .await
            .expect("StopPod accepted")
            .into_inner();
        collect(stream).await
    }

    /// What the runtime still has for a pod uid (sandboxes, containers).
    async fn leftovers(&self, uid: &str) -> (usize, usize) {
        let sel = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
        let sandboxes = self.cri.list_pod_sandboxes(sel.clone()).await.unwrap();
        let containers = self.cri.list_containers(None, sel).await.unwrap();
        (sandboxes.len(), containers.len())
    }
}

async fn collect(mut stream: tonic::Streaming<StartEvent>) -> Vec<StartEvent> {
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        events.push(e.expect("stream item"));
    }
    let terminals = events.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(terminals, 1, "one terminal event: {:#?}", summary(&events));
    events
}

fn summary(events: &[StartEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {}", e.container_name, e.reason, e.message))
        .collect()
}

fn unique(prefix: &str) -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("{prefix}-{}", &id[..8]), id)
}

fn container(lab: &Lab, name: &str, script: &str) -> Container {
    let mut c = Container {
        name: name.into(),
        image: lab.image.clone(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    c
}

fn pod(name: &str, uid: &str, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: name.into(),
            namespace: "e2e".into(),
            uid: uid.into(),
            ..Default::default()
        }),
        containers,
        termination_grace_period_seconds: Some(1),
        ..Default::default()
    }
}

fn exec_post_start(cmd: &str) -> Option<Lifecycle> {
    Some(Lifecycle {
        post_start: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["sh".into(), "-c".into(), cmd.into()],
            })),
        }),
        pre_stop: None,
    })
}

/// Waits until `path` exists and contains `text` (logs are written by the
/// runtime asynchronously).
async fn wait_for_text(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content.contains(text) || Instant::now() > deadline {
            return content;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_init_and_two_app_containers_start_log_and_stop_cleanly() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("full");
    let mut init = container(&lab, "setup", "echo init-done");
    init.set_image_pull_policy(PullPolicy::Always); // pulled from the loopback registry
    let mut web = container(&lab, "web", "echo hello-from-$(WHO); exec sleep 3600");
    web.env = vec![podstart::proto::v1::EnvVar {
        name: "WHO".into(),
        value: "web".into(),
        ..Default::default()
    }];
    web.lifecycle = exec_post_start("echo hooked > /tmp/poststart");
    let worker = container(&lab, "worker", "echo hello-from-worker; exec sleep 3600");
    let mut spec = pod(&name, &uid, vec![web, worker]);
    spec.init_containers = vec![init];

    let events = d.start_pod(spec).await;
    let Some(Payload::PodStarted(started)) = &events.last().unwrap().payload else {
        panic!("pod did not start: {:#?}", summary(&events));
    };
    let reasons: Vec<_> = events
        .iter()
        .map(|e| (e.container_name.as_str(), e.reason.as_str()))
        .collect();
    for expected in [
        ("", "SandboxCreated"),
        ("setup", "Pulling"),
        ("setup", "Pulled"),
        ("setup", "Completed"),
        ("web", "Started"),
        ("web", "PostStartHookSucceeded"),
        ("worker", "Started"),
        ("", "PodStarted"),
    ] {
        assert!(
            reasons.contains(&expected),
            "missing {expected:?} in {reasons:?}"
        );
    }
    let pos = |who: &str, reason: &str| reasons.iter().position(|r| *r == (who, reason)).unwrap();
    assert!(
        pos("setup", "Completed") < pos("web", "Created"),
        "init finishes before apps start"
    );
    assert!(
        pos("web", "Started") < pos("worker", "Created"),
        "apps start one by one"
    );

    // The pod has an IP from the lab's CNI bridge.
    assert_eq!(started.ips.len(), 1, "{started:?}");
    assert!(in_pod_subnet(&started.ips[0]), "{:?}", started.ips);

    // Logs land in <log dir>/<container>/0.log with the expected text.
    let log_dir = d.log_root.join(format!("e2e_{name}_{uid}"));
    let init_log = wait_for_text(&log_dir.join("setup/0.log"), "init-done").await;
    assert!(init_log.contains("stdout F init-done"), "{init_log:?}");
    let web_log = wait_for_text(&log_dir.join("web/0.log"), "hello-from-web").await;
    assert!(
        web_log.contains("hello-from-web"),
        "$(WHO) expanded: {web_log:?}"
    );
    let worker_log = wait_for_text(&log_dir.join("worker/0.log"), "hello-from-worker").await;
    assert!(worker_log.contains("hello-from-worker"), "{worker_log:?}");

    // The PostStart hook ran inside the container.
    let web_id = &started
        .containers
        .iter()
        .find(|c| c.name == "web")
        .unwrap()
        .container_id;
    let out = d
        .cri
        .exec_sync(
            web_id,
            vec!["cat".into(), "/tmp/poststart".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hooked");

    // GetPod reads the node.
    let got = d
        .client
        .clone()
        .get_pod(GetPodRequest {
            pod: Some(PodRef {
                uid: uid.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let states: Vec<_> = got
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.kind(), c.state(), c.exit_code))
        .collect();
    assert!(
        states.contains(&("setup", ContainerKind::Init, ContainerState::Exited, 0)),
        "{states:?}"
    );
    assert!(
        states.contains(&("web", ContainerKind::App, ContainerState::Running, 0)),
        "{states:?}"
    );

    // StopPod leaves nothing behind.
    let stop = d.stop_pod(&uid).await;
    assert!(
        matches!(stop.last().unwrap().payload, Some(Payload::PodStopped(_))),
        "{:#?}",
        summary(&stop)
    );
    assert_eq!(d.leftovers(&uid).await, (0, 0));
    assert!(!log_dir.exists(), "log directory removed");
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_failing_post_start_hook_kills_the_container() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("hookfail");
    let mut c = container(&lab, "app", "exec sleep 3600");
    c.lifecycle = exec_post_start("exit 7");
    let events = d.start_pod(pod(&name, &uid, vec![c])).await;
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.contains(&"FailedPostStartHook"), "{reasons:?}");
    assert!(reasons.contains(&"Killing"), "{reasons:?}");
    let Some(Payload::PodFailed(failed)) = &events.last().unwrap().payload else {
        panic!("expected PodFailed: {:#?}", summary(&events));
    };
    assert_eq!(failed.reason, "PostStartHookError");
    let killed = events
        .iter()
        .find_map(|e| match &e.payload {
            Some(Payload::Container(c)) if e.reason == "Created" => Some(c.container_id.clone()),
            _ => None,
        })
        .unwrap();
    let status = d.cri.container_status(&killed).await.unwrap();
    assert_eq!(
        status.state,
        k8s_cri::v1::ContainerState::ContainerExited as i32,
        "the container was killed"
    );
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_failed_init_container_fails_the_pod_under_never() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("initfail");
    let mut spec = pod(&name, &uid, vec![container(&lab, "app", "exec sleep 3600")]);
    spec.set_restart_policy(RestartPolicy::Never);
    spec.init_containers = vec![container(&lab, "check", "echo nope; exit 1")];
    let events = d.start_pod(spec).await;
    let Some(Payload::PodFailed(failed)) = &events.last().unwrap().payload else {
        panic!("expected PodFailed: {:#?}", summary(&events));
    };
    assert_eq!(failed.reason, "InitContainerFailed");
    assert_eq!(failed.container_name, "check");
    assert!(
        !events.iter().any(|e| e.container_name == "app"),
        "the app container is never started"
    );
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_absent_image_with_never_fails_at_the_image_step() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("never");
    let mut c = container(&lab, "app", "true");
    c.image = "localhost/podstart-lab/absent:1".into();
    c.set_image_pull_policy(PullPolicy::Never);
    let events = d.start_pod(pod(&name, &uid, vec![c])).await;
    let Some(Payload::PodFailed(failed)) = &events.last().unwrap().payload else {
        panic!("expected PodFailed: {:#?}", summary(&events));
    };
    assert_eq!(failed.reason, "ErrImageNeverPull");
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_cli_runs_and_stops_the_example_pod() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let endpoint = format!("unix://{}", d.socket.display());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pod.yaml");
    let bin = env!("CARGO_BIN_EXE_podstart");
    let run = tokio::process::Command::new(bin)
        .args(["--endpoint", &endpoint, "run", "--output", "json"])
        .arg(&example)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "run failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.last().unwrap()["reason"], "PodStarted");
    assert!(
        lines
            .iter()
            .any(|l| l["reason"] == "Completed" && l["container"] == "setup")
    );

    let get = tokio::process::Command::new(bin)
        .args(["--endpoint", &endpoint, "get"])
        .arg(&example)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&get.stdout);
    assert!(get.status.success());
    assert!(text.contains("pod default/hello"), "{text}");

    let stop = tokio::process::Command::new(bin)
        .args(["--endpoint", &endpoint, "stop"])
        .arg(&example)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&stop.stdout);
    assert!(stop.status.success(), "stop failed: {text}");
    assert!(text.contains("PodStopped"), "{text}");
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_an_orchestrator_starts_and_stops_a_pod_over_mtls() {
    let Some(lab) = lab() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (servers, clients) = (
        certs::Ca::new("node CA"),
        certs::Ca::new("orchestrators CA"),
    );
    let (cert, key) = servers.issue(dir, "server", "node-1", &["localhost", "127.0.0.1"]);
    servers.write(&dir.join("servers-ca.pem"));
    clients.write(&dir.join("clients-ca.pem"));
    let (ccert, ckey) = clients.issue(
        dir,
        "orchestrator",
        "orchestrator",
        &["uri:spiffe://podstart.test/ns/sched/sa/orchestrator"],
    );
    let port = net::free_port();
    let log = dir.join("serve.log");
    // The default policy admits unix callers only: the orchestrator is
    // named by a policy.
    let policy = dir.join("authz-policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  - identities: [\"spiffe://podstart.test/ns/sched/sa/orchestrator\", \"unix:uid=0\"]\n    \
         namespaces: [\"*\"]\n    verbs: [start, stop, read, watch]\n",
    )
    .unwrap();
    let flags = [
        format!("--authz-policy={}", policy.display()),
        format!("--listen=tcp://127.0.0.1:{port}"),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", dir.join("clients-ca.pem").display()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let d = Daemon::start_with(&lab, &flags, Some(&log)).await;
    wait_for(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the TLS listener",
        Duration::from_secs(20),
    )
    .await;

    // The orchestrator is a separate client over the network: the CLI with
    // kubectl's TLS flags.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pod.yaml");
    let remote = |cmd: &str| {
        let mut c = Command::new(podstart_bin());
        c.arg("--endpoint")
            .arg(format!("https://localhost:{port}"))
            .arg("--certificate-authority")
            .arg(dir.join("servers-ca.pem"))
            .arg("--client-certificate")
            .arg(&ccert)
            .arg("--client-key")
            .arg(&ckey)
            .arg(cmd);
        c
    };
    let run = remote("run").arg(&example).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "run over mTLS failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("PodStarted"), "{stdout}");
    let stop = remote("stop").arg(&example).output().unwrap();
    let text = String::from_utf8_lossy(&stop.stdout);
    assert!(stop.status.success(), "stop over mTLS failed: {text}");
    assert!(text.contains("PodStopped"), "{text}");

    // Without a client certificate, nothing is started.
    let mut anonymous = Command::new(podstart_bin());
    anonymous
        .arg("--endpoint")
        .arg(format!("https://localhost:{port}"))
        .arg("--certificate-authority")
        .arg(dir.join("servers-ca.pem"))
        .arg("run")
        .arg(&example);
    let out = anonymous.output().unwrap();
    assert!(
        !out.status.success(),
        "a caller without a certificate is refused"
    );

    let served = std::fs::read_to_string(&log).unwrap();
    assert!(
        served.contains("caller=spiffe://podstart.test/ns/sched/sa/orchestrator,cn:orchestrator"),
        "the access log names the orchestrator:\n{served}"
    );
    drop(d);
}

/// The containers of a pod by name, as CRI reports them.
async fn statuses(d: &Daemon, uid: &str) -> HashMap<String, k8s_cri::v1::ContainerStatus> {
    let sel = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let mut out = HashMap::new();
    for c in d.cri.list_containers(None, sel).await.unwrap() {
        let status = d.cri.container_status(&c.id).await.unwrap();
        let name = status.metadata.clone().unwrap_or_default().name;
        out.insert(name, status);
    }
    out
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_sidecar_starts_before_the_second_init_container() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("sidecar");
    // The sidecar becomes ready a second after it starts; its startup probe
    // holds the next init container back until then.
    let mut proxy = container(&lab, "proxy", "sleep 1; touch /tmp/ready; exec sleep 3600");
    proxy.set_restart_policy(ContainerRestartPolicy::Always);
    proxy.startup_probe = Some(Probe {
        handler: Some(Handler {
            action: Some(Action::Exec(ExecAction {
                command: vec!["test".into(), "-f".into(), "/tmp/ready".into()],
            })),
        }),
        period_seconds: 1,
        failure_threshold: 10,
        ..Default::default()
    });
    let mut spec = pod(&name, &uid, vec![container(&lab, "app", "exec sleep 3600")]);
    spec.init_containers = vec![
        container(&lab, "first", "echo first"),
        proxy,
        container(&lab, "second", "echo second"),
    ];
    let events = d.start_pod(spec).await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{:#?}",
        summary(&events)
    );
    let order: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.reason.as_str(),
                "Started" | "StartupProbeSucceeded" | "Completed"
            )
        })
        .map(|e| format!("{} {}", e.container_name, e.reason))
        .collect();
    let probed = order
        .iter()
        .position(|e| e == "proxy StartupProbeSucceeded");
    let second = order.iter().position(|e| e == "second Started");
    assert!(probed.is_some() && probed < second, "{order:?}");

    // The order, from the runtime's own start timestamps.
    let st = statuses(&d, &uid).await;
    let started = |n: &str| st[n].started_at;
    assert!(started("first") < started("proxy"));
    assert!(started("proxy") < started("second"));
    assert!(started("second") < started("app"));
    assert!(
        started("second") - started("proxy") >= 900_000_000,
        "the second init container waited for the probe: {} ns",
        started("second") - started("proxy")
    );
    assert_eq!(
        st["proxy"].state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32,
        "the sidecar keeps running"
    );
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_crashing_app_container_backs_off_with_growing_delays() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start_with(
        &lab,
        &["--restart-backoff", "1s", "--restart-backoff-max", "4s"],
        None,
    )
    .await;
    let (name, uid) = unique("crash");
    let mut feed = d
        .client
        .clone()
        .watch_events(WatchEventsRequest {
            pod_uid: uid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let events = d
        .start_pod(pod(
            &name,
            &uid,
            vec![container(&lab, "crash", "echo crashing; exit 1")],
        ))
        .await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{:#?}",
        summary(&events)
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    while seen
        .iter()
        .filter(|e: &&StartEvent| e.reason == "BackOff")
        .count()
        < 3
        && Instant::now() < deadline
    {
        if let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(1), feed.next()).await {
            seen.push(e);
        }
    }
    let delays: Vec<u64> = seen
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::BackOff(b)) if e.reason == "BackOff" => {
                assert_eq!(b.waiting_reason, "CrashLoopBackOff");
                assert_eq!(
                    e.message,
                    format!("Back-off restarting failed container crash in pod {name}_e2e({uid})")
                );
                Some(b.delay_micros / 1_000_000)
            }
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![1, 2, 4], "{:#?}", summary(&seen));
    // Each restart is a new attempt, and the runtime saw them all.
    let counts: Vec<u32> = seen
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::Container(c)) if e.reason == "Created" => Some(c.restart_count),
            _ => None,
        })
        .collect();
    assert!(counts.starts_with(&[0, 1, 2, 3]), "{counts:?}");
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_ephemeral_container_sees_the_target_processes() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("debug");
    let events = d
        .start_pod(pod(
            &name,
            &uid,
            vec![container(&lab, "app", "exec sleep 3601")],
        ))
        .await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{:#?}",
        summary(&events)
    );
    let attach = |c: Container| {
        let client = d.client.clone();
        let uid = uid.clone();
        async move {
            let stream = client
                .clone()
                .start_container(StartContainerRequest {
                    pod_uid: uid,
                    container: Some(c),
                    ..Default::default()
                })
                .await
                .expect("StartContainer accepted")
                .into_inner();
            collect(stream).await
        }
    };
    let ps = |id: String| {
        let cri = d.cri.clone();
        async move {
            let out = cri
                .exec_sync(&id, vec!["ps".into()], Duration::from_secs(10))
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let started_id = |events: &[StartEvent]| match &events.last().unwrap().payload {
        Some(Payload::PodStarted(p)) => p.containers[0].container_id.clone(),
        other => panic!("expected PodStarted: {other:?} {:#?}", summary(events)),
    };

    let mut debug = container(&lab, "debug", "exec sleep 3602");
    debug.target_container_name = "app".into();
    let attached = attach(debug).await;
    let reasons: Vec<_> = attached.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, vec!["Pulled", "Created", "Started", "PodStarted"]);
    let seen = ps(started_id(&attached)).await;
    assert!(seen.contains("sleep 3601"), "the target's process: {seen}");

    // Without a target, the debug container has its own PID namespace.
    let alone = attach(container(&lab, "alone", "exec sleep 3603")).await;
    let seen = ps(started_id(&alone)).await;
    assert!(!seen.contains("sleep 3601"), "{seen}");

    let st = statuses(&d, &uid).await;
    assert_eq!(
        st["debug"]
            .labels
            .get("io.podstart.container.kind")
            .map(String::as_str),
        Some("ephemeral")
    );
    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
}

// ------------------------------------------------------------------ images

/// The lab's registries (scripts/containerd-lab.sh prints them).
fn registry() -> String {
    std::env::var("REGISTRY").unwrap_or_else(|_| "127.0.0.1:5400".into())
}

fn auth_registry() -> String {
    std::env::var("AUTH_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5402".into())
}

const LAB_USER: &str = "labuser";
const LAB_PASSWORD: &str = "labpass";

fn credential(server: &str, password: &str) -> podstart::proto::v1::RegistryCredential {
    podstart::proto::v1::RegistryCredential {
        server: server.into(),
        username: LAB_USER.into(),
        password: password.into(),
        ..Default::default()
    }
}

fn failed_reason(events: &[StartEvent]) -> String {
    match events.last().and_then(|e| e.payload.as_ref()) {
        Some(Payload::PodFailed(f)) => f.reason.clone(),
        _ => panic!("expected PodFailed: {:#?}", summary(events)),
    }
}

/// Removes an image by its id, so every name of it (tag and digest
/// references) goes and its content is collected.
async fn uncache(cri: &Cri, name: &str) {
    if let Some(found) = cri.image_status(name).await.unwrap() {
        cri.remove_image(&found.id).await.unwrap();
    }
}

fn image_container(lab: &Lab, name: &str, image: &str) -> Container {
    let mut c = container(lab, name, "sleep 3600");
    c.image = image.into();
    c
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_pull_with_correct_credentials_succeeds() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let image = format!("{}/podstart-lab/busybox:latest", auth_registry());
    uncache(&d.cri, &image).await;
    let (name, uid) = unique("creds");
    let mut c = image_container(&lab, "app", &image);
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    let events = d
        .start_request(StartPodRequest {
            pod: Some(pod(&name, &uid, vec![c])),
            credentials: vec![credential(&auth_registry(), LAB_PASSWORD)],
            ..Default::default()
        })
        .await;
    assert!(
        matches!(
            events.last().and_then(|e| e.payload.as_ref()),
            Some(Payload::PodStarted(_))
        ),
        "{:#?}",
        summary(&events)
    );
    let pulled = events.iter().find(|e| e.reason == "Pulled").unwrap();
    assert!(
        pulled.message.starts_with("Successfully pulled image"),
        "{}",
        pulled.message
    );
    d.stop_pod(&uid).await;
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_wrong_or_missing_credentials_fail_with_the_auth_reason_then_back_off() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("podstart.log");
    let d = Daemon::start_with(&lab, &["--log-level", "debug"], Some(&log)).await;
    let image = format!("{}/podstart-lab/busybox:latest", auth_registry());
    uncache(&d.cri, &image).await;
    let wrong = "not-the-Pa55word";
    for (label, credentials) in [
        ("wrong", vec![credential(&auth_registry(), wrong)]),
        ("missing", vec![]),
    ] {
        let (name, uid) = unique(label);
        let req = || StartPodRequest {
            pod: Some(pod(&name, &uid, vec![image_container(&lab, "app", &image)])),
            credentials: credentials.clone(),
            ..Default::default()
        };
        let first = d.start_request(req()).await;
        assert_eq!(failed_reason(&first), "ErrImagePullUnauthorized", "{label}");
        let failed = first.iter().find(|e| e.reason == "Failed").unwrap();
        assert!(
            failed.message.contains("401 Unauthorized"),
            "{}",
            failed.message
        );
        let second = d.start_request(req()).await;
        assert_eq!(failed_reason(&second), "ImagePullBackOff", "{label}");
        let backoff = second.iter().find(|e| e.reason == "BackOff").unwrap();
        assert!(
            backoff
                .message
                .starts_with(&format!("Back-off pulling image {image:?}"))
        );
        for e in first.iter().chain(&second) {
            assert!(!format!("{e:?}").contains(wrong));
        }
        d.stop_pod(&uid).await;
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("401 Unauthorized"),
        "the failure is in the log"
    );
    assert!(!logged.contains(wrong), "the password is not");
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_three_uncached_images_pull_concurrently_with_progress() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start_with(&lab, &["--image-pull-progress-interval", "100ms"], None).await;
    // New layers per run: `big-N:1` may be held by another pod on the lab
    // (unpacked, nothing left to fetch, so no progress to measure).
    let (name, uid) = unique("progress");
    let mut images = Vec::new();
    for n in ["big-1", "big-2", "big-3"] {
        fresh_images::push_fresh(&registry(), n, &uid)
            .await
            .unwrap_or_else(|e| panic!("pushing a fresh {n}: {e}"));
        images.push(format!("{}/podstart-lab/{n}:{uid}", registry()));
    }
    let containers = images
        .iter()
        .enumerate()
        .map(|(i, image)| image_container(&lab, &format!("c{i}"), image))
        .collect();
    let events = d.start_pod(pod(&name, &uid, containers)).await;
    assert!(
        matches!(
            events.last().and_then(|e| e.payload.as_ref()),
            Some(Payload::PodStarted(_))
        ),
        "{:#?}",
        summary(&events)
    );
    let mut windows = Vec::new();
    for i in 0..3 {
        let who = format!("c{i}");
        let mine = |reason: &str| {
            events
                .iter()
                .find(|e| e.container_name == who && e.reason == reason)
                .unwrap_or_else(|| panic!("{who} {reason}: {:#?}", summary(&events)))
                .time_unix_nano
        };
        windows.push((mine("Pulling"), mine("Pulled")));
        let progress: Vec<_> = events
            .iter()
            .filter(|e| e.container_name == who)
            .filter_map(|e| match &e.payload {
                Some(Payload::PullProgress(p)) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let measured: Vec<_> = progress
            .iter()
            .filter(|p| p.source() == podstart::proto::v1::ProgressSource::Containerd)
            .collect();
        assert!(
            !measured.is_empty(),
            "{who}: no measured progress: {progress:?}"
        );
        let last = measured.last().unwrap();
        assert_eq!(last.layers_total, 5, "{who}: busybox + 4 random layers");
        assert!(last.bytes_total > 20 * 1024 * 1024, "{who}: {last:?}");
        // At most ~2 a second per image.
        for pair in measured.windows(2) {
            let gap = pair[1]
                .elapsed_micros
                .saturating_sub(pair[0].elapsed_micros);
            assert!(gap >= 90_000, "{who}: events {gap}µs apart");
        }
    }
    // The three pulls overlapped: each began before any ended.
    let last_start = windows.iter().map(|w| w.0).max().unwrap();
    let first_end = windows.iter().map(|w| w.1).min().unwrap();
    assert!(last_start < first_end, "pulls did not overlap: {windows:?}");
    d.stop_pod(&uid).await;
}

/// Whether `ip` is an IPv4 address in the lab's pod subnet
/// (`PODSTART_E2E_POD_SUBNET`, as `scripts/containerd-lab.sh` prints it;
/// without it, any IPv4 address).
fn in_pod_subnet(ip: &str) -> bool {
    let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let Ok(subnet) = std::env::var("PODSTART_E2E_POD_SUBNET") else {
        return true;
    };
    let (net, bits) = subnet.split_once('/').expect("a CIDR subnet");
    let bits: u32 = bits.parse().expect("a prefix length");
    let net: std::net::Ipv4Addr = net.parse().expect("an IPv4 subnet");
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The newest instance of each container of the pod `uid` (by name), and
/// how many sandboxes the pod has, as containerd reports them.
async fn newest_instances(
    d: &Daemon,
    uid: &str,
) -> (HashMap<String, k8s_cri::v1::Container>, usize) {
    let sel = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let sandboxes = d.cri.list_pod_sandboxes(sel.clone()).await.unwrap();
    let mut newest: HashMap<String, k8s_cri::v1::Container> = HashMap::new();
    for c in d.cri.list_containers(None, sel).await.unwrap() {
        let meta = c.metadata.clone().unwrap_or_default();
        if newest.get(&meta.name).is_none_or(|n| {
            n.metadata
                .as_ref()
                .is_some_and(|m| m.attempt < meta.attempt)
        }) {
            newest.insert(meta.name, c);
        }
    }
    (newest, sandboxes.len())
}

fn attempt_of(c: Option<&k8s_cri::v1::Container>) -> u32 {
    c.and_then(|c| c.metadata.as_ref()).map_or(0, |m| m.attempt)
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_a_restarted_podstart_finishes_a_cut_start_and_resumes_restarts() {
    let Some(lab) = lab() else { return };
    let flags = ["--restart-backoff", "1s", "--restart-backoff-max", "2s"];
    let mut d = Daemon::start_with(&lab, &flags, None).await;

    // A pod whose container crashes, started (and supervised) before the kill.
    let (crash_name, crash_uid) = unique("recrash");
    let events = d
        .start_pod(pod(
            &crash_name,
            &crash_uid,
            vec![container(&lab, "crash", "exit 1")],
        ))
        .await;
    assert!(
        matches!(events.last().unwrap().payload, Some(Payload::PodStarted(_))),
        "{:#?}",
        summary(&events)
    );

    // A pod of five containers whose PostStart hooks take 2 s each: its
    // start (one container at a time) takes about 10 s.
    let (slow_name, slow_uid) = unique("recut");
    let slow: Vec<_> = (0..5)
        .map(|i| {
            let mut c = container(&lab, &format!("c{i}"), "exec sleep 3600");
            c.lifecycle = exec_post_start("sleep 2");
            c
        })
        .collect();
    let cut = {
        let client = d.client.clone();
        let req = StartPodRequest {
            pod: Some(pod(&slow_name, &slow_uid, slow)),
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Ok(stream) = client.clone().start_pod(req).await {
                let mut stream = stream.into_inner();
                while let Some(Ok(_)) = stream.next().await {}
            }
        })
    };
    // Killed in the middle of the start: two containers exist, not all
    // five.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (found, _) = newest_instances(&d, &slow_uid).await;
        if found.len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the start never got under way");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = d.log_root.parent().unwrap().join("restarted.log");
    d.kill_and_restart(Some(&log)).await;
    cut.abort();
    let (at_kill, _) = newest_instances(&d, &slow_uid).await;
    assert!(
        at_kill.len() < 5,
        "killed before the start finished: {at_kill:#?}"
    );
    let crashed = attempt_of(newest_instances(&d, &crash_uid).await.0.get("crash"));

    // Without any request: the cut start is finished, in one sandbox.
    let running = k8s_cri::v1::ContainerState::ContainerRunning as i32;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (found, sandboxes) = loop {
        let (found, sandboxes) = newest_instances(&d, &slow_uid).await;
        if found.len() == 5 && found.values().all(|c| c.state == running) {
            break (found, sandboxes);
        }
        assert!(
            Instant::now() < deadline,
            "the cut start was never finished: {found:#?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sandboxes, 1, "{found:#?}");
    // And the crashing container is restarted again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while attempt_of(newest_instances(&d, &crash_uid).await.0.get("crash")) <= crashed {
        assert!(
            Instant::now() < deadline,
            "the crashing container was not restarted after the restart\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each pod's recovery ends with its PodRecovered event (the cut start's
    // after its last PostStart hook).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let recovered: Vec<_> = text
            .lines()
            .filter(|l| l.contains("reason=PodRecovered"))
            .collect();
        if [&crash_uid, &slow_uid]
            .iter()
            .all(|uid| recovered.iter().any(|l| l.contains(uid.as_str())))
        {
            eprintln!("{}", recovered.join("\n"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no PodRecovered for each pod: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for uid in [&crash_uid, &slow_uid] {
        d.stop_pod(uid).await;
        assert_eq!(d.leftovers(uid).await, (0, 0));
    }
}

/// The lab's containerd, crashed on purpose: `crash` kills it with SIGKILL
/// by its PID (`containerd-lab.sh crash`); `revive` starts it again with the
/// same config and state. Dropping a crashed one revives it, so a failing
/// test never leaves the shared lab without its runtime.
struct CrashedContainerd {
    down: bool,
}

fn lab_script(cmd: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/containerd-lab.sh");
    let out = Command::new(script)
        .arg(cmd)
        .stderr(Stdio::inherit())
        .output()
        .expect("run containerd-lab.sh");
    assert!(out.status.success(), "containerd-lab.sh {cmd} failed");
    out
}

impl CrashedContainerd {
    fn crash() -> CrashedContainerd {
        lab_script("crash");
        CrashedContainerd { down: true }
    }

    fn revive(&mut self) {
        if std::mem::take(&mut self.down) {
            lab_script("revive");
        }
    }
}

impl Drop for CrashedContainerd {
    fn drop(&mut self) {
        if self.down {
            // Even while a failed assertion unwinds.
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/containerd-lab.sh");
            let _ = Command::new(script).arg("revive").status();
        }
    }
}

/// `/readyz`'s status code (0 when nothing answers).
fn readyz(d: &Daemon) -> u16 {
    net::http_get(&d.metrics, "/readyz").map_or(0, |(code, _)| code)
}

/// Polls `/readyz` until it answers `code`: how long that took, or None
/// when it did not within `within`.
async fn readyz_becomes(d: &Daemon, code: u16, within: Duration) -> Option<Duration> {
    let since = Instant::now();
    while readyz(d) != code {
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(since.elapsed())
}

fn two_container_pod(lab: &Lab, name: &str, uid: &str) -> PodSpec {
    pod(
        name,
        uid,
        vec![
            container(lab, "app", "exec sleep 3600"),
            container(lab, "helper", "exec sleep 3600"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_containerd_killed_during_ten_starts_then_reissued_starts_leave_exactly_what_the_pods_need()
 {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    assert!(
        readyz_becomes(&d, 200, Duration::from_secs(20))
            .await
            .is_some(),
        "ready before the test"
    );
    let pods: Vec<(String, String)> = (0..10).map(|_| unique("crash")).collect();

    let streams: Vec<_> = pods
        .iter()
        .map(|(name, uid)| {
            let req = StartPodRequest {
                pod: Some(two_container_pod(&lab, name, uid)),
                ..Default::default()
            };
            let mut client = d.client.clone();
            tokio::spawn(async move {
                let stream = client.start_pod(req).await.expect("StartPod accepted");
                collect(stream.into_inner()).await
            })
        })
        .collect();
    // Mid-way: some sandboxes made, the rest of the work still to come.
    let uids: Vec<String> = pods.iter().map(|(_, uid)| uid.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut made = 0;
        for uid in &uids {
            made += d.leftovers(uid).await.0;
        }
        if made >= 3 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Problems are gathered, and the pods stopped, before anything is
    // asserted: a failure must not leave pods on the shared lab.
    let mut problems = Vec::new();
    let killed = Instant::now();
    let mut containerd = CrashedContainerd::crash();
    let dropped = readyz_becomes(&d, 503, Duration::from_secs(20)).await;
    containerd.revive();
    let down = killed.elapsed();
    let recovered = readyz_becomes(&d, 200, Duration::from_secs(60)).await;
    eprintln!(
        "readiness dropped {dropped:?} after the kill; containerd was down {down:?}; \
         ready again {recovered:?} after it was back"
    );
    if dropped.is_none() {
        problems.push("readiness did not drop while containerd was away".to_string());
    }
    if recovered.is_none() {
        problems.push("readiness did not come back with containerd".to_string());
    }

    let mut outcomes = Vec::new();
    for s in streams {
        match s.await {
            Err(e) => problems.push(format!("first start: {e}")),
            Ok(events) => match events.last().and_then(|e| e.payload.as_ref()) {
                Some(Payload::PodStarted(_)) => outcomes.push("started".to_string()),
                Some(Payload::PodFailed(f)) if f.step != 0 => {
                    outcomes.push(format!("failed at {:?}: {}", f.step(), f.reason));
                }
                _ => problems.push(format!(
                    "first start: not one terminal event naming its step: {:#?}",
                    summary(&events)
                )),
            },
        }
    }
    eprintln!("first starts: {outcomes:#?}");

    // Re-issued, every pod starts, with no second sandbox or container.
    let again: Vec<_> = pods
        .iter()
        .map(|(name, uid)| {
            let req = StartPodRequest {
                pod: Some(two_container_pod(&lab, name, uid)),
                ..Default::default()
            };
            let mut client = d.client.clone();
            tokio::spawn(async move {
                let stream = client.start_pod(req).await.expect("StartPod accepted");
                collect(stream.into_inner()).await
            })
        })
        .collect();
    for s in again {
        match s.await {
            Err(e) => problems.push(format!("re-issued start: {e}")),
            Ok(events)
                if matches!(
                    events.last().and_then(|e| e.payload.as_ref()),
                    Some(Payload::PodStarted(_))
                ) => {}
            Ok(events) => problems.push(format!(
                "re-issued start did not start: {:#?}",
                summary(&events)
            )),
        }
    }
    if readyz(&d) != 200 {
        problems.push("not ready after the runtime came back".into());
    }
    for uid in &uids {
        let found = d.leftovers(uid).await;
        if found != (1, 2) {
            problems.push(format!(
                "pod {uid}: {found:?} (sandboxes, containers), not one sandbox and two containers"
            ));
        }
    }

    for uid in &uids {
        d.stop_pod(uid).await;
        assert_eq!(d.leftovers(uid).await, (0, 0), "pod {uid} removed");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
