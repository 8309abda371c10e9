//! End-to-end tests of the sim: a real server on a temp unix socket, driven by the k8s-cri client
//! over that socket, as podstart and its integration tests will drive it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use super::*;

const IMAGE: &str = "localhost/lab/busybox:1.36";

struct Sim {
    sim: SimRuntime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), SimError>>,
    _dir: tempfile::TempDir,
}

async fn start(config: SimConfig) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("sim.sock");
    let sim = SimRuntime::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let sim = sim.clone();
        let socket = socket.clone();
        async move {
            sim.serve_unix(&socket, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let channel = connect(&socket).await;
    Sim {
        sim,
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
        socket,
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

/// Connects over the unix socket, waiting for the server to bind it.
async fn connect(socket: &Path) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "sim never bound {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let path = socket.to_owned();
    Endpoint::try_from("http://[::]")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

fn pod(name: &str, uid: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_owned(),
            namespace: "default".to_owned(),
            uid: uid.to_owned(),
            attempt: 0,
        }),
        log_directory: format!("/var/log/pods/default_{name}_{uid}"),
        labels: HashMap::from([("podstart.io/pod-uid".to_owned(), uid.to_owned())]),
        annotations: HashMap::from([("note".to_owned(), "sim".to_owned())]),
        ..cri::PodSandboxConfig::default()
    }
}

fn host_network(mut config: cri::PodSandboxConfig) -> cri::PodSandboxConfig {
    config.linux = Some(cri::LinuxPodSandboxConfig {
        security_context: Some(cri::LinuxSandboxSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                network: cri::NamespaceMode::Node as i32,
                ..cri::NamespaceOption::default()
            }),
            ..cri::LinuxSandboxSecurityContext::default()
        }),
        ..cri::LinuxPodSandboxConfig::default()
    });
    config
}

fn container(name: &str, env: &[(&str, &str)]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: IMAGE.to_owned(),
            ..cri::ImageSpec::default()
        }),
        envs: env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        labels: HashMap::from([("podstart.io/container".to_owned(), name.to_owned())]),
        log_path: format!("{name}/0.log"),
        ..cri::ContainerConfig::default()
    }
}

impl Sim {
    async fn pull(&mut self, image: &str) -> String {
        self.images
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_owned(),
                    ..cri::ImageSpec::default()
                }),
                ..cri::PullImageRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .image_ref
    }

    async fn run_pod(&mut self, config: cri::PodSandboxConfig) -> Result<String, tonic::Status> {
        self.runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    async fn create(
        &mut self,
        sandbox: &str,
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        self.runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.to_owned(),
                config: Some(config),
                sandbox_config: None,
            })
            .await
            .map(|r| r.into_inner().container_id)
    }

    async fn start_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.to_owned(),
            })
            .await
            .map(|_| ())
    }

    async fn status(&mut self, id: &str) -> Result<cri::ContainerStatus, tonic::Status> {
        self.runtime
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await
            .map(|r| r.into_inner().status.unwrap())
    }

    async fn exec(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, tonic::Status> {
        self.runtime
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.to_owned(),
                cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
                timeout,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A running container in a fresh pod, image pulled.
    async fn running(&mut self, env: &[(&str, &str)]) -> String {
        self.pull(IMAGE).await;
        let sandbox = self.run_pod(pod("web", "uid-1")).await.unwrap();
        let id = self.create(&sandbox, container("app", env)).await.unwrap();
        self.start_container(&id).await.unwrap();
        id
    }

    /// Polls ContainerStatus until the container has exited.
    async fn wait_exited(&mut self, id: &str, within: Duration) -> cri::ContainerStatus {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(id).await.unwrap();
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return status;
            }
            assert!(Instant::now() < deadline, "{id} still {:?}", status.state);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .expect("sim did not shut down within 5 s")
            .unwrap();
        served.unwrap();
        assert!(!self.socket.exists(), "socket file left behind");
    }
}

#[tokio::test]
async fn version_and_status_report_a_ready_runtime() {
    let mut sim = start(SimConfig::default()).await;
    let version = sim
        .runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "podstart-sim");
    assert_eq!(version.runtime_api_version, "v1");
    let status = sim
        .runtime
        .status(cri::StatusRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ready: Vec<(&str, bool)> = status
        .conditions
        .iter()
        .map(|c| (c.r#type.as_str(), c.status))
        .collect();
    assert_eq!(ready, [("RuntimeReady", true), ("NetworkReady", true)]);
    assert_eq!(sim.sim.calls("Version"), 1);
    assert_eq!(sim.sim.calls("Status"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn sandbox_and_container_lifecycle() {
    let mut sim = start(SimConfig::default()).await;
    let image_ref = sim.pull(IMAGE).await;

    let sandbox = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    assert_eq!(sandbox.len(), 64);
    assert!(sandbox.chars().all(|c| c.is_ascii_hexdigit()));
    let status = sim
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with("10.88."), "pod ip {ip}");
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.metadata.unwrap().uid, "uid-1");
    assert_eq!(status.annotations["note"], "sim");
    assert!(status.created_at > 0);

    let host = sim
        .run_pod(host_network(pod("node-agent", "uid-2")))
        .await
        .unwrap();
    let host_status = sim
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: host.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(host_status.network.unwrap().ip, "");

    let by_label = sim
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: HashMap::from([(
                    "podstart.io/pod-uid".to_owned(),
                    "uid-2".to_owned(),
                )]),
                ..cri::PodSandboxFilter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        by_label.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [host.as_str()]
    );

    let id = sim.create(&sandbox, container("app", &[])).await.unwrap();
    let created = sim.status(&id).await.unwrap();
    assert_eq!(created.state, cri::ContainerState::ContainerCreated as i32);
    assert_eq!(
        created.log_path,
        "/var/log/pods/default_web_uid-1/app/0.log"
    );
    assert_eq!(created.image.unwrap().image, IMAGE);
    assert_eq!(created.image_ref, image_ref);

    sim.start_container(&id).await.unwrap();
    let running = sim.status(&id).await.unwrap();
    assert_eq!(running.state, cri::ContainerState::ContainerRunning as i32);
    assert!(running.started_at >= running.created_at);

    let listed = sim
        .runtime
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: sandbox.clone(),
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..cri::ContainerFilter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].labels["podstart.io/container"], "app");

    sim.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 30,
        })
        .await
        .unwrap();
    let stopped = sim.status(&id).await.unwrap();
    assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!((stopped.exit_code, stopped.reason.as_str()), (137, "Error"));
    assert!(stopped.finished_at >= stopped.started_at);

    // A second container survives until its sandbox is stopped, then the sandbox goes away whole.
    let sidecar = sim
        .create(&sandbox, container("sidecar", &[]))
        .await
        .unwrap();
    sim.start_container(&sidecar).await.unwrap();
    sim.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    let gone = sim.status(&id).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        gone.message(),
        format!("an error occurred when try to find container \"{id}\": not found")
    );
    assert_eq!(sim.sim.container_count(), 1);

    sim.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        })
        .await
        .unwrap();
    let killed = sim.status(&sidecar).await.unwrap();
    assert_eq!(killed.exit_code, 137);
    let not_ready = sim
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                state: Some(cri::PodSandboxStateValue {
                    state: cri::PodSandboxState::SandboxNotready as i32,
                }),
                ..cri::PodSandboxFilter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(not_ready.len(), 1);
    assert_eq!(not_ready[0].id, sandbox);

    for id in [&sandbox, &host, &"0".repeat(64)] {
        sim.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .unwrap();
    }
    assert_eq!(sim.sim.sandbox_count(), 0);
    assert_eq!(sim.sim.container_count(), 0);
    let missing = sim
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(sim.sim.calls("RunPodSandbox"), 2);
    assert_eq!(sim.sim.calls("RemovePodSandbox"), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn names_stay_reserved_until_removed() {
    let mut sim = start(SimConfig::default()).await;
    sim.pull(IMAGE).await;
    let first = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    let again = sim.run_pod(pod("web", "uid-1")).await.unwrap_err();
    assert_eq!(again.code(), Code::Unknown);
    assert_eq!(
        again.message(),
        format!(
            "failed to reserve sandbox name \"web_default_uid-1_0\": name \"web_default_uid-1_0\" is reserved for \"{first}\""
        )
    );

    let app = sim.create(&first, container("app", &[])).await.unwrap();
    let twice = sim.create(&first, container("app", &[])).await.unwrap_err();
    assert_eq!(twice.code(), Code::Unknown);
    assert!(
        twice
            .message()
            .starts_with("failed to reserve container name \"app_web_default_uid-1_0\"")
    );
    assert!(
        twice
            .message()
            .ends_with(&format!("is reserved for \"{app}\""))
    );

    sim.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: first,
        })
        .await
        .unwrap();
    let second = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    sim.create(&second, container("app", &[])).await.unwrap();
    sim.shutdown().await;
}

/// A pod labelled like the kubelet's, with sandbox attempt `attempt`.
fn kubelet_pod(uid: &str, attempt: u32) -> cri::PodSandboxConfig {
    let mut config = pod("web", uid);
    config.metadata.as_mut().unwrap().attempt = attempt;
    config
        .labels
        .insert("io.kubernetes.pod.uid".to_owned(), uid.to_owned());
    config
}

#[tokio::test]
async fn two_live_sandboxes_or_containers_of_one_pod_are_recorded() {
    let mut sim = start(SimConfig::default()).await;
    sim.pull(IMAGE).await;

    // One pod replaced the kubelet's way: the old sandbox stops first.
    let old = sim.run_pod(kubelet_pod("uid-ok", 0)).await.unwrap();
    sim.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: old,
        })
        .await
        .unwrap();
    let new = sim.run_pod(kubelet_pod("uid-ok", 1)).await.unwrap();
    let app = sim.create(&new, container("app", &[])).await.unwrap();
    sim.start_container(&app).await.unwrap();
    assert!(sim.sim.duplicated_pods().is_empty());

    // Two ready sandboxes of one pod.
    sim.run_pod(kubelet_pod("uid-two-sandboxes", 0))
        .await
        .unwrap();
    sim.run_pod(kubelet_pod("uid-two-sandboxes", 1))
        .await
        .unwrap();

    // Two running containers of one name in one pod.
    let sandbox = sim.run_pod(kubelet_pod("uid-two-apps", 0)).await.unwrap();
    let mut again = container("app", &[]);
    again.metadata.as_mut().unwrap().attempt = 1;
    for config in [container("app", &[]), again] {
        let id = sim.create(&sandbox, config).await.unwrap();
        sim.start_container(&id).await.unwrap();
    }
    assert_eq!(
        sim.sim.duplicated_pods(),
        ["uid-two-apps", "uid-two-sandboxes"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn create_container_needs_sandbox_and_image() {
    let mut sim = start(SimConfig::default()).await;
    let unknown = "f".repeat(64);
    let no_sandbox = sim
        .create(&unknown, container("app", &[]))
        .await
        .unwrap_err();
    assert_eq!(no_sandbox.code(), Code::NotFound);
    assert_eq!(
        no_sandbox.message(),
        format!("failed to find sandbox id \"{unknown}\": not found")
    );

    let sandbox = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    let no_image = sim
        .create(&sandbox, container("app", &[]))
        .await
        .unwrap_err();
    assert_eq!(no_image.code(), Code::NotFound);
    assert_eq!(
        no_image.message(),
        format!("failed to resolve image \"{IMAGE}\": not found")
    );
    // The failed create left no name behind.
    sim.pull(IMAGE).await;
    sim.create(&sandbox, container("app", &[])).await.unwrap();
    assert_eq!(sim.sim.calls("CreateContainer"), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn scripted_exit_code_after_run_time() {
    let mut sim = start(SimConfig::default()).await;
    let id = sim
        .running(&[(EXIT_CODE_ENV, "3"), (RUN_MS_ENV, "150")])
        .await;
    let early = sim.status(&id).await.unwrap();
    assert_eq!(early.state, cri::ContainerState::ContainerRunning as i32);

    let exited = sim.wait_exited(&id, Duration::from_secs(3)).await;
    assert_eq!((exited.exit_code, exited.reason.as_str()), (3, "Error"));
    let ran_for =
        Duration::from_nanos(u64::try_from(exited.finished_at - exited.started_at).unwrap());
    assert!(ran_for >= Duration::from_millis(150), "ran {ran_for:?}");

    // RUN_MS alone completes with 0; stopping afterwards changes nothing.
    let sandbox = sim.run_pod(pod("batch", "uid-2")).await.unwrap();
    let job = sim
        .create(&sandbox, container("job", &[(RUN_MS_ENV, "20")]))
        .await
        .unwrap();
    sim.start_container(&job).await.unwrap();
    let done = sim.wait_exited(&job, Duration::from_secs(3)).await;
    assert_eq!((done.exit_code, done.reason.as_str()), (0, "Completed"));
    sim.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: job.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    assert_eq!(sim.status(&job).await.unwrap().exit_code, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn scripted_start_error_ends_exited_128() {
    let mut sim = start(SimConfig::default()).await;
    sim.pull(IMAGE).await;
    let sandbox = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    let message = "failed to create containerd task: exec: \"/nonexistent\": stat /nonexistent: no such file or directory";
    let id = sim
        .create(&sandbox, container("app", &[(START_ERROR_ENV, message)]))
        .await
        .unwrap();
    let err = sim.start_container(&id).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(err.message(), message);
    let status = sim.status(&id).await.unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(
        (
            status.exit_code,
            status.reason.as_str(),
            status.message.as_str()
        ),
        (128, "StartError", message)
    );
    let bad_script = sim
        .create(&sandbox, container("other", &[(EXIT_CODE_ENV, "three")]))
        .await
        .unwrap_err();
    assert_eq!(bad_script.code(), Code::InvalidArgument);
    sim.shutdown().await;
}

#[tokio::test]
async fn exec_sync_exit_code_sequences_count_per_container_name() {
    let mut sim = start(SimConfig::default()).await;
    let first = sim.running(&[]).await;
    let sandbox_id = sim
        .runtime
        .list_containers(cri::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers[0]
        .pod_sandbox_id
        .clone();
    let second = sim
        .create(&sandbox_id, container("app2", &[]))
        .await
        .unwrap();
    sim.start_container(&second).await.unwrap();
    let probe = ["probe", "exit-codes", "0,2,1"];
    let mut codes = Vec::new();
    for id in [&first, &first, &second, &first, &first, &second] {
        codes.push(sim.exec(id, &probe, 0).await.unwrap().exit_code);
    }
    assert_eq!(codes, [0, 2, 0, 1, 1, 2]);
    sim.shutdown().await;
}

#[tokio::test]
async fn exec_sync_exit_codes_and_timeout() {
    let mut sim = start(SimConfig::default()).await;
    let id = sim.running(&[]).await;
    assert_eq!(
        sim.exec(&id, &["sh", "-c", "exit 3"], 0)
            .await
            .unwrap()
            .exit_code,
        3
    );
    assert_eq!(sim.exec(&id, &["false"], 0).await.unwrap().exit_code, 1);
    assert_eq!(
        sim.exec(&id, &["cat", "/tmp/ready"], 0)
            .await
            .unwrap()
            .exit_code,
        0
    );
    assert_eq!(
        sim.exec(&id, &["sleep", "0.05"], 1)
            .await
            .unwrap()
            .exit_code,
        0
    );

    let begun = Instant::now();
    let timeout = sim.exec(&id, &["sleep", "30"], 1).await.unwrap_err();
    let waited = begun.elapsed();
    assert_eq!(timeout.code(), Code::DeadlineExceeded);
    assert_eq!(
        timeout.message(),
        "failed to exec in container: timeout 1s exceeded"
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );

    sim.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let stopped = sim.exec(&id, &["true"], 0).await.unwrap_err();
    assert_eq!(stopped.code(), Code::Unknown);
    assert_eq!(
        stopped.message(),
        "failed to exec in container: container is in CONTAINER_EXITED state"
    );

    let execs = sim.sim.execs();
    assert_eq!(execs.len(), 6);
    assert_eq!(
        execs[0],
        (id.clone(), vec!["sh".into(), "-c".into(), "exit 3".into()])
    );
    assert_eq!(execs[4].1, ["sleep", "30"]);
    assert_eq!(sim.sim.calls("ExecSync"), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn container_events_report_create_start_and_exit() {
    let mut sim = start(SimConfig::default()).await;
    sim.pull(IMAGE).await;
    let mut events = sim
        .runtime
        .get_container_events(cri::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let sandbox = sim.run_pod(pod("web", "uid-1")).await.unwrap();
    let id = sim
        .create(&sandbox, container("app", &[(EXIT_CODE_ENV, "0")]))
        .await
        .unwrap();
    sim.start_container(&id).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(3), events.message())
            .await
            .expect("no container event within 3 s")
            .unwrap()
            .expect("event stream ended");
        assert_eq!(event.container_id, id);
        seen.push(event);
    }
    let kinds: Vec<i32> = seen.iter().map(|e| e.container_event_type).collect();
    assert_eq!(
        kinds,
        [
            cri::ContainerEventType::ContainerCreatedEvent as i32,
            cri::ContainerEventType::ContainerStartedEvent as i32,
            cri::ContainerEventType::ContainerStoppedEvent as i32,
        ]
    );
    let started = &seen[1];
    assert_eq!(started.pod_sandbox_status.as_ref().unwrap().id, sandbox);
    assert_eq!(started.containers_statuses.len(), 1);
    assert_eq!(
        started.containers_statuses[0].state,
        cri::ContainerState::ContainerRunning as i32
    );
    assert_eq!(seen[2].containers_statuses[0].reason, "Completed");

    // Shutting down ends the open stream instead of waiting for it.
    sim.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(3), events.message())
        .await
        .expect("stream still open after shutdown");
    assert!(!matches!(ended, Ok(Some(_))), "unexpected event {ended:?}");
}

#[tokio::test]
async fn image_pulls_and_registry_failures() {
    let mut sim = start(SimConfig {
        preloaded_images: vec!["localhost/lab/pause:3.9".to_owned()],
        ..SimConfig::default()
    })
    .await;
    let status = |image: &str| cri::ImageStatusRequest {
        image: Some(cri::ImageSpec {
            image: image.to_owned(),
            ..cri::ImageSpec::default()
        }),
        verbose: false,
    };
    let absent = sim
        .images
        .image_status(status("busybox"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(absent.image, None);

    let image_ref = sim.pull("busybox").await;
    assert!(
        image_ref.starts_with("sha256:") && image_ref.len() == 71,
        "{image_ref}"
    );
    assert_eq!(sim.pull("busybox:latest").await, image_ref);
    let present = sim
        .images
        .image_status(status("busybox"))
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(present.id, image_ref);
    assert_eq!(present.repo_tags, ["busybox:latest"]);
    assert_eq!(present.size, 1 << 20);
    let by_id = sim.images.image_status(status(&image_ref)).await.unwrap();
    assert_eq!(by_id.into_inner().image.unwrap().id, image_ref);

    let pull = |image: &str, auth: Option<cri::AuthConfig>| cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: image.to_owned(),
            ..cri::ImageSpec::default()
        }),
        auth,
        sandbox_config: None,
    };
    let missing = sim
        .images
        .pull_image(pull("localhost/lab/does-not-exist", None))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing
            .message()
            .starts_with("failed to pull and unpack image \"localhost/lab/does-not-exist:latest\"")
    );
    assert!(missing.message().ends_with("not found"));
    let private = "127.0.0.1:5001/lab/needs-auth:v1";
    let unauthorized = sim
        .images
        .pull_image(pull(private, None))
        .await
        .unwrap_err();
    assert_eq!(unauthorized.code(), Code::Unknown);
    assert!(unauthorized.message().contains("401 Unauthorized"));
    let creds = cri::AuthConfig {
        username: "lab".to_owned(),
        password: "secret".to_owned(),
        server_address: "127.0.0.1:5001".to_owned(),
        ..cri::AuthConfig::default()
    };
    sim.images
        .pull_image(pull(private, Some(creds)))
        .await
        .unwrap();

    let listed = sim
        .images
        .list_images(cri::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    let tags: Vec<&str> = listed.iter().map(|i| i.repo_tags[0].as_str()).collect();
    assert_eq!(tags, [private, "busybox:latest", "localhost/lab/pause:3.9"]);

    sim.images
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: "busybox".to_owned(),
                ..cri::ImageSpec::default()
            }),
        })
        .await
        .unwrap();
    let removed = sim.images.image_status(status("busybox")).await.unwrap();
    assert_eq!(removed.into_inner().image, None);
    assert_eq!(sim.sim.calls("PullImage"), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn unsimulated_calls_answer_unimplemented() {
    let mut sim = start(SimConfig::default()).await;
    let err = sim
        .runtime
        .exec(cri::ExecRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.message(), "podstart-sim: Exec is not simulated");
    let err = sim
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(sim.sim.calls("ListContainerStats"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let mut sim = start(SimConfig {
        latency: Duration::from_millis(80),
        ..SimConfig::default()
    })
    .await;
    let begun = Instant::now();
    sim.runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap();
    sim.images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .unwrap();
    assert!(
        begun.elapsed() >= Duration::from_millis(160),
        "{:?}",
        begun.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn stale_socket_is_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let listener = SimRuntime::bind_unix(&socket).unwrap();
    drop(listener);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let err = SimRuntime::bind_unix(&file).unwrap_err();
    assert!(matches!(err, SimError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn listen_addresses() {
    assert_eq!(
        parse_listen("unix:///run/podstart/sim.sock").unwrap(),
        PathBuf::from("/run/podstart/sim.sock")
    );
    assert_eq!(
        parse_listen("/tmp/sim.sock").unwrap(),
        PathBuf::from("/tmp/sim.sock")
    );
    for bad in [
        "unix://relative.sock",
        "tcp://127.0.0.1:1234",
        "sim.sock",
        "",
        "unix:///tmp/",
    ] {
        assert!(
            matches!(
                parse_listen(bad),
                Err(SimError::InvalidListenAddress { .. })
            ),
            "{bad} accepted"
        );
    }
}
