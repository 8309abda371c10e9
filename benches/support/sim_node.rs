//! What the sim-process benches share: a `podstart sim-runtime` process, a
//! `podstart serve` process against it, a minimal direct CRI client, one-
//! container pods through podstart's API, /proc readings, percentiles,
//! CSV samples and the machine line.
//!
//! Included by each bench with `#[path = "support/sim_node.rs"] mod sim_node;`;
//! not every bench uses every item.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use k8s_cri::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, PodMetadata, PodRef, PodSpec, PullPolicy, StartPodRequest, StopPodRequest,
    pod_starter_client::PodStarterClient, start_event::Payload,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// The image every bench pod runs; pulled into the sim once, before timing.
pub(crate) const IMAGE: &str = "registry.test/bench/app:1";

/// `PODSTART_BENCH_SMOKE=1`: tiny counts, every code path.
pub(crate) fn smoke() -> bool {
    std::env::var("PODSTART_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `PODSTART_BENCH_<name>` as a number; `full` by default, `small` in smoke mode.
pub(crate) fn env_usize(name: &str, full: usize, small: usize) -> usize {
    std::env::var(format!("PODSTART_BENCH_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { small } else { full })
}

/// The podstart binary cargo built for this profile (release under
/// `cargo bench`, debug under `cargo test --bench`).
pub(crate) fn podstart_bin() -> &'static str {
    env!("CARGO_BIN_EXE_podstart")
}

/// The machine line every bench prints first.
pub(crate) fn print_machine(what: &str) {
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "{what}: nproc {}, kernel {}, {}, build {profile}{}",
        run("nproc", &[]),
        run("uname", &["-r"]),
        run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        if smoke() { ", SMOKE (tiny counts)" } else { "" }
    );
}

/// Says where podstart's pod roots (logs, state, volumes) and the sockets
/// are: a temporary directory (`TMPDIR` chooses where), and its file
/// system type, which the per-pod directories' cost depends on.
pub(crate) fn print_roots(dir: &Path) {
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("pod roots and sockets: {} ({fs})", dir.display());
}

/// A child process killed (SIGTERM, then waited for) when dropped.
#[derive(Debug)]
pub(crate) struct Proc(pub Child);

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM and wait.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.terminate();
        }
    }
}

async fn wait_for_path(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `podstart sim-runtime` on `<dir>/sim.sock`, with the bench image pulled.
pub(crate) async fn spawn_sim(dir: &Path) -> (Proc, Address) {
    let sock = dir.join("sim.sock");
    let proc = Proc(
        Command::new(podstart_bin())
            .arg("sim-runtime")
            .arg(format!("--listen=unix://{}", sock.display()))
            .env("PODSTART_LOG_LEVEL", "warn")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn podstart sim-runtime"),
    );
    wait_for_path(&sock, "the sim runtime").await;
    let addr = Address::Unix(sock);
    let mut images =
        ImageServiceClient::new(podstart::endpoint::channel(&addr, Peer::Image).unwrap());
    images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("pull the bench image into the sim");
    (proc, addr)
}

/// Where one `podstart serve` listens.
#[derive(Debug, Clone)]
pub(crate) struct Serve {
    pub(crate) socket: PathBuf,
    pub(crate) metrics_port: u16,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `podstart serve` against `runtime`, its sockets and pod roots
/// under `dir` (the same ones on every spawn with the same `dir`, so a
/// later one recovers the pods of an earlier one). Does not wait.
pub(crate) fn spawn_serve_nowait(dir: &Path, runtime: &Address, extra: &[String]) -> (Proc, Serve) {
    let socket = dir.join("podstart.sock");
    let _ = std::fs::remove_file(&socket);
    let metrics_port = free_port();
    let Address::Unix(runtime_sock) = runtime else {
        panic!("the sim listens on a unix socket");
    };
    let proc = Proc(
        Command::new(podstart_bin())
            .arg("serve")
            .arg(format!(
                "--runtime-endpoint=unix://{}",
                runtime_sock.display()
            ))
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg(format!("--metrics-listen=127.0.0.1:{metrics_port}"))
            .arg("--pod-log-root")
            .arg(dir.join("pods"))
            .arg("--pod-state-root")
            .arg(dir.join("state"))
            .arg("--pod-volume-root")
            .arg(dir.join("volumes"))
            .args(["--node-name", "bench-node", "--node-ip", "10.0.0.1"])
            .args(extra)
            .env("PODSTART_LOG_LEVEL", "warn")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn podstart serve"),
    );
    (
        proc,
        Serve {
            socket,
            metrics_port,
        },
    )
}

/// Spawns `podstart serve` and waits until its API socket is there.
pub(crate) async fn spawn_serve(dir: &Path, runtime: &Address, extra: &[String]) -> (Proc, Serve) {
    let (proc, serve) = spawn_serve_nowait(dir, runtime, extra);
    wait_for_path(&serve.socket, "podstart serve").await;
    (proc, serve)
}

/// A new HTTP/2 connection to podstart's API.
pub(crate) fn api_client(serve: &Serve) -> PodStarterClient<Channel> {
    PodStarterClient::new(
        podstart::endpoint::channel(&Address::Unix(serve.socket.clone()), Peer::Podstart).unwrap(),
    )
}

/// GET `path` on the metrics port: status code and body, if it answered.
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_owned()))
}

/// GET /readyz on the metrics port: its status code, if it answered.
pub(crate) fn readyz(port: u16) -> Option<u16> {
    http_get(port, "/readyz").map(|(code, _)| code)
}

/// podstart's CRI calls so far, from its /metrics: per operation, the
/// count and the summed seconds (as podstart's client measures them).
pub(crate) fn cri_calls(port: u16) -> HashMap<String, (f64, f64)> {
    let body = http_get(port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut out: HashMap<String, (f64, f64)> = HashMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("podstart_runtime_operations_duration_seconds_") else {
            continue;
        };
        let Some((kind, rest)) = rest.split_once("{operation_type=\"") else {
            continue;
        };
        let Some((op, value)) = rest.split_once("\"}") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = out.entry(op.to_owned()).or_default();
        match kind {
            "count" => entry.0 += value,
            "sum" => entry.1 += value,
            _ => {}
        }
    }
    out
}

// ---- pods through podstart ----

pub(crate) fn pod_spec(namespace: &str, i: usize) -> PodSpec {
    let mut c = Container {
        name: "app".into(),
        image: IMAGE.into(),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    PodSpec {
        metadata: Some(PodMetadata {
            name: format!("{namespace}-{i}"),
            namespace: namespace.into(),
            uid: format!("uid-{namespace}-{i}"),
            ..Default::default()
        }),
        containers: vec![c],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

/// StartPod of pod `i` of `namespace`: the time until its PodStarted event
/// (the stream is then read to its end, untimed).
pub(crate) async fn start_pod(
    client: &PodStarterClient<Channel>,
    namespace: &str,
    i: usize,
) -> Duration {
    let t = Instant::now();
    let mut stream = client
        .clone()
        .start_pod(StartPodRequest {
            pod: Some(pod_spec(namespace, i)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("StartPod {namespace}-{i}: {s}"))
        .into_inner();
    let mut took = None;
    while let Some(e) = stream.next().await {
        match e.expect("StartPod stream").payload {
            Some(Payload::PodStarted(_)) => took = Some(t.elapsed()),
            Some(Payload::PodFailed(f)) => panic!("bench pod {namespace}-{i} failed: {f:?}"),
            _ => {}
        }
        if took.is_some() {
            break;
        }
    }
    let took = took.unwrap_or_else(|| panic!("StartPod {namespace}-{i}: stream ended early"));
    while let Some(e) = stream.next().await {
        e.expect("StartPod stream");
    }
    took
}

/// StopPod of pod `i` of `namespace`, read to the end of its stream.
pub(crate) async fn stop_pod(client: &PodStarterClient<Channel>, namespace: &str, i: usize) {
    let req = StopPodRequest {
        pod: Some(PodRef {
            uid: format!("uid-{namespace}-{i}"),
            ..Default::default()
        }),
        grace_period_seconds: Some(0),
    };
    let mut stream = client
        .clone()
        .stop_pod(req)
        .await
        .unwrap_or_else(|s| panic!("StopPod {namespace}-{i}: {s}"))
        .into_inner();
    while let Some(e) = stream.next().await {
        e.expect("StopPod stream");
    }
}

// ---- the minimal direct CRI client ----

/// Only the calls and fields a hand-written client needs to run one
/// container: RunPodSandbox, CreateContainer, StartContainer.
#[derive(Debug, Clone)]
pub(crate) struct Direct {
    rt: RuntimeServiceClient<Channel>,
}

impl Direct {
    /// A client on its own HTTP/2 connection to the runtime.
    pub(crate) fn new(runtime: &Address) -> Self {
        Direct {
            rt: RuntimeServiceClient::new(
                podstart::endpoint::channel(runtime, Peer::Runtime).unwrap(),
            ),
        }
    }

    fn sandbox_config(namespace: &str, i: usize) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("{namespace}-{i}"),
                uid: format!("uid-{namespace}-{i}"),
                namespace: namespace.into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    /// Runs pod `i` of `namespace`: its time and its sandbox id.
    pub(crate) async fn start(&self, namespace: &str, i: usize) -> (Duration, String) {
        let mut rt = self.rt.clone();
        let config = Self::sandbox_config(namespace, i);
        let t = Instant::now();
        let sandbox = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                ..Default::default()
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let container = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: "app".into(),
                        attempt: 0,
                    }),
                    image: Some(cri::ImageSpec {
                        image: IMAGE.into(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "3600".into()],
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest {
            container_id: container,
        })
        .await
        .expect("StartContainer");
        (t.elapsed(), sandbox)
    }

    /// StopPodSandbox + RemovePodSandbox.
    pub(crate) async fn remove(&self, sandbox: &str) {
        let mut rt = self.rt.clone();
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.into(),
        })
        .await
        .expect("StopPodSandbox");
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox.into(),
        })
        .await
        .expect("RemovePodSandbox");
    }

    /// How many sandboxes the runtime holds, by namespace label.
    pub(crate) async fn sandboxes(&self) -> HashMap<String, usize> {
        let mut rt = self.rt.clone();
        let list = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items;
        let mut by_ns = HashMap::new();
        for s in list {
            let ns = s.metadata.map(|m| m.namespace).unwrap_or_default();
            *by_ns.entry(ns).or_default() += 1;
        }
        by_ns
    }
}

// ---- /proc ----

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 if unknown).
pub(crate) fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of a process so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start at state (3);
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| {
        f.get(k - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / clk_tck()
}

/// VmRSS of a process, in MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU use of a set of processes over an interval.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    start: Instant,
    cpu: Vec<(u32, f64)>,
}

impl CpuMeter {
    pub(crate) fn start(pids: &[u32]) -> Self {
        CpuMeter {
            start: Instant::now(),
            cpu: pids.iter().map(|&p| (p, cpu_seconds(p))).collect(),
        }
    }

    /// Per process: CPU seconds used since `start`, and that as % of one core.
    pub(crate) fn read(&self) -> Vec<(f64, f64)> {
        let wall = self.start.elapsed().as_secs_f64();
        self.cpu
            .iter()
            .map(|&(p, before)| {
                let used = cpu_seconds(p) - before;
                (used, 100.0 * used / wall)
            })
            .collect()
    }
}

// ---- numbers ----

/// The nearest-rank percentile of sorted samples (`q` in 0..=1).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn median(sorted: &[Duration]) -> Duration {
    percentile(sorted, 0.5)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `target/bench/` of this worktree (or `CARGO_TARGET_DIR`), made if absent.
pub(crate) fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).expect("make target/bench");
    dir
}

/// Writes `target/bench/<name>` (`series,value`), values through `unit`
/// (`ms` or `us`). Returns the path.
pub(crate) fn write_csv(
    name: &str,
    series: &[(&str, &[Duration])],
    unit: fn(Duration) -> f64,
) -> PathBuf {
    let path = bench_dir().join(name);
    let mut out = String::from("series,value\n");
    for (name, samples) in series {
        for &d in samples.iter() {
            out.push_str(&format!("{name},{:.3}\n", unit(d)));
        }
    }
    std::fs::write(&path, out).expect("write the samples CSV");
    path
}
