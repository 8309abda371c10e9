//! Test harness: podstart's API served in-process over a unix socket,
//! against the simulated CRI runtime on another unix socket.

use std::{path::PathBuf, time::Duration};

use podstart::api::PodStarterService;
use podstart::authz::Authorizer;
use podstart::cri::{Cri, CriSettings};
use podstart::endpoint::{Address, Peer};
use podstart::images::{PullBackoff, Puller, PullerConfig};
use podstart::pleg::PlegConfig;
use podstart::proto::v1::{
    Container, EnvVar, PodMetadata, PodRef, PodSpec, PullPolicy, StartEvent, StartPodRequest,
    StopPodRequest, pod_starter_client::PodStarterClient, start_event::Payload,
};
use podstart::sim::{SimConfig, SimRuntime};
use podstart::start::{
    DEFAULT_PULLER, FlowConfig, KUBELET_BACKOFF, Parts, Starter, backoff::CrashLoopBackoff,
};
use podstart::telemetry::Metrics;
use tokio_stream::StreamExt;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Status, transport::Channel};

/// A policy granting the harness's caller (root over the unix socket)
/// every verb in every namespace at `privileged`.
pub(crate) const PRIVILEGED_POLICY: &str = "rules:\n  - identities: [\"unix:uid=0\"]\n    namespaces: [\"*\"]\n    verbs: [start, stop, read, watch]\n    podSecurity: privileged\n";

/// An image the simulated node has from the start.
pub(crate) const IMAGE: &str = "registry.test/podstart/busybox:1.0";

/// The settings a test may tune before the harness builds podstart's
/// parts.
pub(crate) struct Tuning {
    pub(crate) flow: FlowConfig,
    pub(crate) puller: PullerConfig,
    pub(crate) image_pull_backoff: Duration,
    pub(crate) image_pull_backoff_max: Duration,
    pub(crate) restart_backoff: Duration,
    pub(crate) restart_backoff_max: Duration,
    /// `--max-concurrent-starts`.
    pub(crate) max_concurrent_starts: usize,
    /// The node's container watcher (`--container-events`, relist periods).
    pub(crate) pleg: PlegConfig,
    /// `--authz-policy`, as the file's text (named `the test policy`);
    /// None for the default policy. The harness calls as root
    /// (`unix:uid=0`).
    pub(crate) authz_policy: Option<String>,
}

pub(crate) struct Harness {
    pub(crate) sim: SimRuntime,
    /// The simulated runtime's CRI endpoint.
    pub(crate) runtime: Address,
    pub(crate) client: PodStarterClient<Channel>,
    pub(crate) log_root: PathBuf,
    /// `--pod-volume-root`.
    pub(crate) volume_root: PathBuf,
    pub(crate) metrics: Metrics,
    /// The flow itself, for calls the API would refuse.
    pub(crate) starter: Starter,
    /// podstart's API socket.
    pub(crate) api: PathBuf,
    shutdown: CancellationToken,
    /// Stops the simulated runtime's server alone (`runtime_down_for`).
    sim_serving: std::sync::Arc<std::sync::Mutex<Serving>>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    /// A harness whose caller is granted `privileged` (the default policy
    /// grants baseline): for tests of what baseline refuses, such as HTTP
    /// hooks and probes with a host (the tests' servers listen on the
    /// loopback, not the simulated pod's IP).
    pub(crate) async fn privileged() -> Harness {
        Harness::with(|t| t.authz_policy = Some(PRIVILEGED_POLICY.into())).await
    }

    pub(crate) async fn new() -> Harness {
        Harness::with(|_| {}).await
    }

    /// A harness whose flow settings `tune` may change (back-offs are short
    /// by default here).
    pub(crate) async fn with(tune: impl FnOnce(&mut Tuning)) -> Harness {
        Harness::build(|_| {}, tune, |_| {}).await
    }

    /// Like `with`, also tuning the CRI client (deadlines, retries).
    pub(crate) async fn with_settings(
        tune: impl FnOnce(&mut Tuning),
        tune_cri: impl FnOnce(&mut CriSettings),
    ) -> Harness {
        Harness::build(|_| {}, tune, tune_cri).await
    }

    /// A harness over a sim configured by `sim` (which always has `IMAGE`).
    pub(crate) async fn with_sim_config(sim: SimConfig, tune: impl FnOnce(&mut Tuning)) -> Harness {
        Harness::build(
            move |s| {
                let preloaded = std::mem::take(&mut s.preloaded_images);
                *s = sim;
                s.preloaded_images.extend(preloaded);
            },
            tune,
            |_| {},
        )
        .await
    }

    /// A harness whose simulated runtime `tune_sim` may change too.
    pub(crate) async fn with_sim(
        tune_sim: impl FnOnce(&mut SimConfig),
        tune: impl FnOnce(&mut Tuning),
    ) -> Harness {
        Harness::build(tune_sim, tune, |_| {}).await
    }

    async fn build(
        tune_sim: impl FnOnce(&mut SimConfig),
        tune: impl FnOnce(&mut Tuning),
        tune_cri: impl FnOnce(&mut CriSettings),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();

        let sim_sock = dir.path().join("sim.sock");
        let mut sim_config = SimConfig {
            preloaded_images: vec![IMAGE.to_string()],
            ..Default::default()
        };
        tune_sim(&mut sim_config);
        let sim = SimRuntime::new(sim_config);
        let sim_serving = serve_sim(&sim, &sim_sock, &shutdown);

        let metrics = Metrics::new().unwrap();
        let runtime = Address::Unix(sim_sock);
        let mut settings = CriSettings::default();
        tune_cri(&mut settings);
        let cri = Cri::new(&runtime, &runtime, settings, metrics.clone()).unwrap();
        let (image_pull_backoff, image_pull_backoff_max) = KUBELET_BACKOFF;
        let mut tuning = Tuning {
            flow: FlowConfig {
                pod_log_root: dir.path().join("pods"),
                pod_state_root: dir.path().join("state"),
                pod_volume_root: dir.path().join("volumes"),
                ..FlowConfig::default()
            },
            puller: DEFAULT_PULLER,
            image_pull_backoff,
            image_pull_backoff_max,
            restart_backoff: Duration::from_millis(50),
            restart_backoff_max: Duration::from_millis(200),
            max_concurrent_starts: podstart::api::DEFAULT_MAX_CONCURRENT_STARTS,
            pleg: PlegConfig {
                relist_period: Duration::from_millis(20),
                ..PlegConfig::default()
            },
            authz_policy: None,
        };
        tune(&mut tuning);
        let log_root = tuning.flow.pod_log_root.clone();
        let volume_root = tuning.flow.pod_volume_root.clone();
        let max_concurrent_starts = tuning.max_concurrent_starts;
        let authz = match &tuning.authz_policy {
            Some(text) => Authorizer::from_text(text, "the test policy", Vec::new()).unwrap(),
            None => Authorizer::default(),
        };
        let starter = Starter::new(Parts {
            puller: Puller::new(cri.clone(), tuning.puller),
            pull_backoff: PullBackoff::new(
                tuning.image_pull_backoff,
                tuning.image_pull_backoff_max,
            ),
            crash_loop: CrashLoopBackoff::new(tuning.restart_backoff, tuning.restart_backoff_max),
            cri,
            config: tuning.flow,
            metrics: metrics.clone(),
            pleg: tuning.pleg,
        });
        // As `serve` does once the runtime answers: the node's pods are
        // looked for (none on a new sim) and its sandbox index filled.
        starter.recover().await.unwrap();
        let service = PodStarterService::new(starter.clone(), TaskTracker::new())
            .max_concurrent_starts(max_concurrent_starts)
            .authorizer(authz);

        let api_sock = dir.path().join("podstart.sock");
        let api = tokio::net::UnixListener::bind(&api_sock).unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service.into_server())
                .serve_with_incoming_shutdown(
                    podstart::listen::unix_incoming(api, "unix://harness".into(), None),
                    shutdown.clone().cancelled_owned(),
                ),
        );
        let channel =
            podstart::endpoint::channel(&Address::Unix(api_sock.clone()), Peer::Podstart).unwrap();
        Harness {
            sim,
            runtime,
            client: PodStarterClient::new(channel),
            log_root,
            volume_root,
            metrics,
            starter,
            api: api_sock,
            shutdown,
            sim_serving: std::sync::Arc::new(std::sync::Mutex::new(sim_serving)),
            _dir: dir,
        }
    }

    /// Takes the simulated runtime off the node for `how_long`, as a
    /// crashed runtime is: its server stops and its socket goes, so calls
    /// fail to connect; then it serves again on the same socket. Returns
    /// once the runtime is down; it comes back in the background.
    pub(crate) async fn runtime_down_for(&self, how_long: Duration) {
        let Address::Unix(sock) = self.runtime.clone() else {
            unreachable!("the harness serves the sim on a unix socket")
        };
        let (token, task) = {
            let mut serving = self.sim_serving.lock().unwrap();
            (serving.0.clone(), serving.1.take())
        };
        token.cancel();
        if let Some(task) = task {
            task.await.unwrap();
        }
        let _ = std::fs::remove_file(&sock);
        let (sim, shutdown, serving) = (
            self.sim.clone(),
            self.shutdown.clone(),
            self.sim_serving.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(how_long).await;
            *serving.lock().unwrap() = serve_sim(&sim, &sock, &shutdown);
        });
    }

    /// Another podstart against the same simulated runtime, as after a
    /// restart: a new `Starter` (nothing in memory carried over) with the
    /// same flow settings and short crash-loop back-offs.
    /// Waits until `n` calls of `method` are held by a `hang` fault: the
    /// first podstart is inside those calls, not about to make them, when a
    /// test lifts the fault (at most 30 s).
    pub(crate) async fn until_hung(&self, method: &str, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.sim.faults().hung(method) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{method} never hung {n} times (only {})",
                self.sim.faults().hung(method)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn restarted_starter(&self) -> Starter {
        self.restarted_starter_with(|_| {})
    }

    /// Like `restarted_starter`, with flow settings `tune` may change.
    pub(crate) fn restarted_starter_with(&self, tune: impl FnOnce(&mut FlowConfig)) -> Starter {
        let mut config = self.starter.config().clone();
        tune(&mut config);
        let cri = Cri::new(
            &self.runtime,
            &self.runtime,
            CriSettings::default(),
            self.metrics.clone(),
        )
        .unwrap();
        let mut parts = Parts::with_defaults(cri, config, self.metrics.clone());
        parts.crash_loop =
            CrashLoopBackoff::new(Duration::from_millis(50), Duration::from_millis(200));
        Starter::new(parts)
    }

    /// Runs StartPod and collects the whole stream. Checks the stream's
    /// promise: exactly one terminal event, and it comes last.
    pub(crate) async fn start(&self, req: StartPodRequest) -> Result<Vec<StartEvent>, Status> {
        let stream = self.client.clone().start_pod(req).await?.into_inner();
        Ok(collect(stream).await)
    }

    pub(crate) async fn stop(&self, uid: &str) -> Result<Vec<StartEvent>, Status> {
        let stream = self
            .client
            .clone()
            .stop_pod(StopPodRequest {
                pod: Some(PodRef {
                    uid: uid.to_string(),
                    ..Default::default()
                }),
                grace_period_seconds: None,
            })
            .await?
            .into_inner();
        Ok(collect(stream).await)
    }
}

pub(crate) async fn collect(mut stream: tonic::Streaming<StartEvent>) -> Vec<StartEvent> {
    let mut events = Vec::new();
    // A stream that never ends is a failure, not a hang.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Some(e) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the stream ends")
    {
        events.push(e.expect("stream item"));
    }
    let terminals = events.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(
        terminals,
        1,
        "exactly one terminal event: {:#?}",
        reasons(&events)
    );
    assert!(
        events.last().is_some_and(StartEvent::is_terminal),
        "terminal event last"
    );
    events
}

/// `(who, reason)` per event; `who` is the container name or "pod".
pub(crate) fn reasons(events: &[StartEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let who = if e.container_name.is_empty() {
                "pod".to_string()
            } else {
                e.container_name.clone()
            };
            (who, e.reason.clone())
        })
        .collect()
}

/// Shorthand for an expected `(who, reason)` list.
pub(crate) fn seq(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub(crate) fn terminal(events: &[StartEvent]) -> &Payload {
    events
        .last()
        .and_then(|e| e.payload.as_ref())
        .expect("terminal payload")
}

pub(crate) fn container(name: &str) -> Container {
    let mut c = Container {
        name: name.to_string(),
        image: IMAGE.to_string(),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    c
}

/// A container the simulated runtime runs for `run_ms` and then exits with
/// `code`.
pub(crate) fn exiting(name: &str, code: i32, run_ms: u64) -> Container {
    let mut c = container(name);
    c.env = vec![
        EnvVar {
            name: "PODSTART_SIM_EXIT_CODE".into(),
            value: code.to_string(),
            ..Default::default()
        },
        EnvVar {
            name: "PODSTART_SIM_RUN_MS".into(),
            value: run_ms.to_string(),
            ..Default::default()
        },
    ];
    c
}

/// Adds `PODSTART_SIM_*` script entries to a container's env.
pub(crate) fn scripted(mut c: Container, pairs: &[(&str, &str)]) -> Container {
    c.env.extend(pairs.iter().map(|(k, v)| EnvVar {
        name: format!("PODSTART_SIM_{k}"),
        value: v.to_string(),
        ..Default::default()
    }));
    c
}

pub(crate) fn pod(name: &str, uid: &str, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: name.to_string(),
            namespace: "default".to_string(),
            uid: uid.to_string(),
            ..Default::default()
        }),
        containers,
        termination_grace_period_seconds: Some(2),
        ..Default::default()
    }
}

pub(crate) fn request(pod: PodSpec) -> StartPodRequest {
    StartPodRequest {
        pod: Some(pod),
        ..Default::default()
    }
}

/// The simulated runtime's server: what stops it, and its task.
type Serving = (CancellationToken, Option<tokio::task::JoinHandle<()>>);

/// Serves `sim` on `sock` until `shutdown` (or the returned token) fires.
fn serve_sim(sim: &SimRuntime, sock: &std::path::Path, shutdown: &CancellationToken) -> Serving {
    let token = shutdown.child_token();
    let listener = SimRuntime::bind_unix(sock).unwrap();
    let task = tokio::spawn({
        let (sim, token) = (sim.clone(), token.clone());
        async move {
            let _ = sim
                .serve_unix_listener(listener, token.cancelled_owned())
                .await;
        }
    });
    (token, Some(task))
}
