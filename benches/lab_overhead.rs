//! podstart's start latency on a real runtime against a minimal,
//! hand-written direct CRI client, in the same run.
//!
//!   set -a; eval "$(scripts/containerd-lab.sh start)"; set +a
//!   cargo bench --bench lab_overhead            # release, 20 rounds
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench lab_overhead   # debug, 2 rounds
//!
//! Settings: `CONTAINER_RUNTIME_ENDPOINT` (or `PODSTART_BENCH_RUNTIME`),
//! `TEST_IMAGE` (or `PODSTART_BENCH_IMAGE`, present on the node),
//! `PODSTART_BENCH_ROUNDS` (default 20, smoke 2),
//! `PODSTART_BENCH_DIRECT_SANDBOX_SECCOMP=1` (the direct client gives its
//! sandbox the RuntimeDefault seccomp profile, as the kubelet and podstart
//! do: shows what that profile costs RunPodSandbox),
//! `PODSTART_BENCH_SERVE_LOG` (the `podstart serve` process's `--log-level`,
//! default `warn`; its log goes to this bench's stderr).
//!
//! The direct side makes only the calls a hand-written client needs, with
//! only metadata, image, command, log directory/path and the default Linux
//! security contexts in its configs: RunPodSandbox, then per container
//! CreateContainer + StartContainer; for an init container it polls
//! ContainerStatus every 5 ms until the container exits; a PostStart exec
//! hook is one ExecSync right after its container's start. The podstart
//! side is StartPod through a `podstart serve` process on its own socket
//! (the release binary under `cargo bench`, debug under `cargo test`),
//! timed at the client until PodStarted. Rounds alternate the two; every
//! pod is removed between rounds (untimed).
//!
//! Pods: `1-container` (`sleep 3600`); `init-2-app` (init `true`, two app
//! containers `sleep 3600`, PostStart `sh -c 'echo ok'` on the first);
//! `init-2-app-parallel` (the same pod with StartOptions.app_start =
//! PARALLEL, against the same direct sequence). Prints median/p90 per side
//! and the ratio of medians per pod, then per step the median of podstart's
//! PodStarted.timings beside the median of the direct client's call for it.
//! Samples: `target/bench/lab-<pod>.csv` (series direct, podstart).
//! Measures, asserts nothing.
#[path = "labkit/mod.rs"]
mod labkit;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use labkit::pods::{HOOK, Kind, parts, request, strings};
use labkit::{Server, Steps};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::Step;
use tonic::transport::Channel;

/// The minimal direct client: one pod, its calls timed one by one into
/// `steps` under podstart's step names. Returns the sandbox id and the time
/// from the first call to the last reply.
async fn direct(
    rt: &mut RuntimeServiceClient<Channel>,
    kind: Kind,
    name: &str,
    uid: &str,
    image: &str,
    log_root: &Path,
    steps: &mut Steps,
) -> (String, Duration) {
    let log_directory = log_root.join(format!("{}_{name}_{uid}", labkit::NAMESPACE));
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: labkit::NAMESPACE.into(),
            attempt: 0,
        }),
        log_directory: log_directory.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                seccomp: std::env::var_os("PODSTART_BENCH_DIRECT_SANDBOX_SECCOMP").map(|_| {
                    cri::SecurityProfile {
                        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let began = Instant::now();
    std::fs::create_dir_all(&log_directory).expect("log directory");
    let t = Instant::now();
    let sandbox = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    steps.add("sandbox · RunPodSandbox", t.elapsed());
    for p in parts(kind) {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: p.name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: strings(p.command),
            log_path: format!("{}/0.log", p.name),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = Instant::now();
        let id = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        steps.add(&format!("{} · create", p.name), t.elapsed());
        let t = Instant::now();
        rt.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("StartContainer");
        steps.add(&format!("{} · start", p.name), t.elapsed());
        if p.hook {
            let t = Instant::now();
            let r = rt
                .exec_sync(cri::ExecSyncRequest {
                    container_id: id.clone(),
                    cmd: strings(HOOK),
                    timeout: 0,
                })
                .await
                .expect("ExecSync")
                .into_inner();
            assert_eq!(r.exit_code, 0, "the PostStart command failed");
            steps.add(&format!("{} · post-start", p.name), t.elapsed());
        }
        if p.init {
            let t = Instant::now();
            loop {
                let s = rt
                    .container_status(cri::ContainerStatusRequest {
                        container_id: id.clone(),
                        verbose: false,
                    })
                    .await
                    .expect("ContainerStatus")
                    .into_inner()
                    .status
                    .expect("a container status");
                if s.state == cri::ContainerState::ContainerExited as i32 {
                    assert_eq!(s.exit_code, 0, "the init container failed");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            steps.add(&format!("{} · wait-exit", p.name), t.elapsed());
        }
    }
    (sandbox, began.elapsed())
}

async fn remove_direct(rt: &mut RuntimeServiceClient<Channel>, sandbox: &str) {
    let _ = rt
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.into(),
        })
        .await;
    if let Err(e) = rt
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox.into(),
        })
        .await
    {
        eprintln!("RemovePodSandbox {sandbox}: {e}");
    }
}

/// podstart's step name as the direct client's rows name it.
fn step_row(container: &str, step: i32) -> String {
    let step = match Step::try_from(step).unwrap_or(Step::Unspecified) {
        Step::Sandbox => "RunPodSandbox",
        Step::Validate => "validate",
        Step::Image => "image",
        Step::Create => "create",
        Step::Start => "start",
        Step::PostStart => "post-start",
        Step::WaitExit => "wait-exit",
        Step::Done => "done",
        other => other.as_str_name(),
    };
    let who = if container.is_empty() {
        "sandbox"
    } else {
        container
    };
    format!("{who} · {step}")
}

struct Outcome {
    kind: Kind,
    direct: Vec<Duration>,
    podstart: Vec<Duration>,
    direct_steps: Steps,
    podstart_steps: Steps,
}

async fn run(
    kind: Kind,
    rounds: usize,
    rt: &mut RuntimeServiceClient<Channel>,
    client: &podstart::proto::v1::pod_starter_client::PodStarterClient<Channel>,
    image: &str,
    log_root: &Path,
) -> Outcome {
    let mut out = Outcome {
        kind,
        direct: Vec::new(),
        podstart: Vec::new(),
        direct_steps: Steps::default(),
        podstart_steps: Steps::default(),
    };
    // Round 0 warms both sides up and is not counted.
    for round in 0..=rounds {
        let name = format!("lab-{}-{}-{round}-d", labkit::run_id(), kind.name());
        let uid = uuid::Uuid::new_v4().to_string();
        let mut steps = Steps::default();
        let (sandbox, took) = direct(rt, kind, &name, &uid, image, log_root, &mut steps).await;
        remove_direct(rt, &sandbox).await;
        if round > 0 {
            out.direct.push(took);
            for row in steps.rows() {
                out.direct_steps
                    .add(row, Duration::from_secs_f64(steps.median(row) / 1e3));
            }
        }

        let name = format!("lab-{}-{}-{round}-p", labkit::run_id(), kind.name());
        let uid = uuid::Uuid::new_v4().to_string();
        let (took, started) = labkit::start_pod(client, request(kind, &name, &uid, image)).await;
        labkit::stop_pod(client, &uid).await;
        if round > 0 {
            out.podstart.push(took);
            for t in &started.timings {
                out.podstart_steps.add(
                    &step_row(&t.container_name, t.step),
                    Duration::from_micros(t.duration_micros),
                );
            }
            out.podstart_steps.add(
                "total at podstart (PodStarted.total_duration)",
                Duration::from_micros(started.total_duration_micros),
            );
        }
    }
    out.direct_steps.add(
        "total at the client",
        Duration::from_secs_f64(labkit::median(&out.direct) / 1e3),
    );
    out.podstart_steps.add(
        "total at the client",
        Duration::from_secs_f64(labkit::median(&out.podstart) / 1e3),
    );
    labkit::write_csv(
        &format!("lab-{}", kind.name()),
        &[("direct", &out.direct), ("podstart", &out.podstart)],
    );
    out
}

#[tokio::main]
async fn main() {
    let Some(runtime) = labkit::runtime_endpoint() else {
        println!(
            "lab_overhead: skipped: no lab (set CONTAINER_RUNTIME_ENDPOINT, e.g. from scripts/containerd-lab.sh start)"
        );
        return;
    };
    let image = labkit::test_image();
    let rounds = labkit::count("ROUNDS", 20, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let log_root = dir.path().join("direct-logs");

    let addr = Address::parse(&runtime, Peer::Runtime).expect("runtime endpoint");
    let mut rt = RuntimeServiceClient::new(
        podstart::endpoint::channel(&addr, Peer::Runtime).expect("channel"),
    );
    labkit::remove_leftovers(&runtime, "lab-").await;
    let server = Server::start(&runtime, dir.path(), &[]).await;
    let client = server.client();

    let mut outcomes = Vec::new();
    for kind in [Kind::One, Kind::InitTwoApp, Kind::InitTwoAppParallel] {
        outcomes.push(run(kind, rounds, &mut rt, &client, &image, &log_root).await);
    }

    println!();
    println!("### (a) podstart against a minimal direct CRI client (lab)");
    println!();
    println!("{}", labkit::machine_line());
    println!(
        "runtime: {runtime}  image: {image}  rounds: {rounds} (alternating, after 1 warm-up each)"
    );
    println!();
    println!(
        "| pod | direct median | direct p90 | podstart median | podstart p90 | ratio of medians |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for o in &outcomes {
        let (dm, d90) = labkit::stats(&o.direct);
        let (pm, p90) = labkit::stats(&o.podstart);
        println!(
            "| {} | {dm:.1} ms | {d90:.1} ms | {pm:.1} ms | {p90:.1} ms | {:.2} |",
            o.kind.describe(),
            pm / dm
        );
    }
    for o in &outcomes {
        println!();
        println!(
            "Where the time goes, {} (medians in ms; podstart: PodStarted.timings; direct: each call at the client; steps overlap under PARALLEL):",
            o.kind.name()
        );
        println!();
        println!("| step | direct | podstart |");
        println!("| --- | ---: | ---: |");
        let mut rows: Vec<String> = o.podstart_steps.rows().to_vec();
        for r in o.direct_steps.rows() {
            if !rows.contains(r) {
                rows.push(r.clone());
            }
        }
        // The totals last.
        rows.sort_by_key(|r| r.starts_with("total"));
        for r in rows {
            println!(
                "| {r} | {} | {} |",
                labkit::cell(o.direct_steps.median(&r)),
                labkit::cell(o.podstart_steps.median(&r))
            );
        }
    }
    drop(server);
}
