//! What the lab benches share: the bench settings read from the
//! environment, a `podstart serve` process on its own socket, StartPod and
//! StopPod through it, statistics, Markdown rows and the CSV samples under
//! `target/bench/`. Included by each lab bench with `#[path]`; not every
//! bench uses every item.
#![allow(dead_code)]

pub(crate) mod pods;

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    PodRef, PodStarted, StartPodRequest, StopPodRequest, pod_starter_client::PodStarterClient,
    start_event::Payload,
};
use tokio_stream::StreamExt;

/// The namespace of every pod the lab benches create.
pub(crate) const NAMESPACE: &str = "bench-lab";

/// `PODSTART_BENCH_SMOKE=1`: tiny counts, every code path.
pub(crate) fn smoke() -> bool {
    std::env::var("PODSTART_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A count from `PODSTART_BENCH_<name>`, else `smoke` in smoke mode, else
/// `default`.
pub(crate) fn count(name: &str, default: usize, smoke_count: usize) -> usize {
    std::env::var(format!("PODSTART_BENCH_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { smoke_count } else { default })
}

/// The lab's CRI endpoint: `PODSTART_BENCH_RUNTIME`, else the lab's
/// `CONTAINER_RUNTIME_ENDPOINT`.
pub(crate) fn runtime_endpoint() -> Option<String> {
    ["PODSTART_BENCH_RUNTIME", "CONTAINER_RUNTIME_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// The image every container runs: `PODSTART_BENCH_IMAGE`, else the lab's
/// `TEST_IMAGE`.
pub(crate) fn test_image() -> String {
    ["PODSTART_BENCH_IMAGE", "TEST_IMAGE"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "localhost/podstart-lab/busybox:latest".into())
}

pub(crate) fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The machine line every bench prints first.
pub(crate) fn machine_line() -> String {
    let out = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "machine: nproc {}, kernel {}, {}, build profile {}{}",
        out("nproc", &[]),
        out("uname", &["-r"]),
        out("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        profile(),
        if smoke() { " (smoke)" } else { "" }
    )
}

/// Where raw samples go: `$CARGO_TARGET_DIR/bench`, else `target/bench`
/// in the package.
pub(crate) fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

/// Writes `target/bench/<scenario>.csv` (`series,value`, milliseconds).
pub(crate) fn write_csv(scenario: &str, series: &[(&str, &[Duration])]) {
    let dir = bench_dir();
    let path = dir.join(format!("{scenario}.csv"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        writeln!(f, "series,value")?;
        for (name, values) in series {
            for v in *values {
                writeln!(f, "{name},{:.3}", ms(*v))?;
            }
        }
        f.flush()
    };
    match write() {
        Ok(()) => println!("samples: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and p90 in milliseconds (NaN for no samples).
pub(crate) fn stats(v: &[Duration]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut v = v.to_vec();
    v.sort();
    let median = if v.len().is_multiple_of(2) {
        (ms(v[v.len() / 2 - 1]) + ms(v[v.len() / 2])) / 2.0
    } else {
        ms(v[v.len() / 2])
    };
    let p90 = ms(v[((v.len() as f64 * 0.9).ceil() as usize).saturating_sub(1)]);
    (median, p90)
}

pub(crate) fn median(v: &[Duration]) -> f64 {
    stats(v).0
}

/// A cell: milliseconds with one decimal, or a dash when there is none.
pub(crate) fn cell(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else {
        format!("{v:.1}")
    }
}

/// Samples under named rows, in the order the rows were first seen.
#[derive(Default)]
pub(crate) struct Steps {
    order: Vec<String>,
    samples: BTreeMap<String, Vec<Duration>>,
}

impl Steps {
    pub(crate) fn add(&mut self, row: &str, d: Duration) {
        if !self.samples.contains_key(row) {
            self.order.push(row.to_string());
        }
        self.samples.entry(row.to_string()).or_default().push(d);
    }

    pub(crate) fn rows(&self) -> &[String] {
        &self.order
    }

    pub(crate) fn median(&self, row: &str) -> f64 {
        self.samples.get(row).map_or(f64::NAN, |v| median(v))
    }
}

/// A short id for this run, in every pod name, so that a run never meets
/// the pods of an interrupted one.
pub(crate) fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..6].to_string())
}

/// Removes the sandboxes an interrupted run left in [`NAMESPACE`] whose
/// names start with `prefix` (before any `podstart serve` would take them
/// up again).
pub(crate) async fn remove_leftovers(runtime: &str, prefix: &str) {
    use k8s_cri::v1 as cri;
    let Ok(addr) = Address::parse(runtime, Peer::Runtime) else {
        return;
    };
    let Ok(channel) = podstart::endpoint::channel(&addr, Peer::Runtime) else {
        return;
    };
    let mut rt = cri::runtime_service_client::RuntimeServiceClient::new(channel);
    let Ok(list) = rt
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
    else {
        return;
    };
    for s in list.into_inner().items {
        let Some(m) = &s.metadata else { continue };
        if m.namespace != NAMESPACE || !m.name.starts_with(prefix) {
            continue;
        }
        eprintln!(
            "removing a pod an earlier run left: {}/{}",
            m.namespace, m.name
        );
        let _ = rt
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        let _ = rt
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
    }
}

/// A `podstart serve` process on its own unix socket against `runtime`,
/// with its pod directories under `dir`; SIGTERM when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) socket: PathBuf,
}

impl Server {
    pub(crate) async fn start(runtime: &str, dir: &Path, extra_args: &[&str]) -> Server {
        let socket = dir.join("podstart.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_podstart"))
            .args([
                "serve",
                "--runtime-endpoint",
                runtime,
                "--log-level",
                &std::env::var("PODSTART_BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg("--pod-log-root")
            .arg(dir.join("logs"))
            .arg("--pod-state-root")
            .arg(dir.join("state"))
            .arg("--pod-volume-root")
            .arg(dir.join("volumes"))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(extra_args)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn podstart serve");
        let began = Instant::now();
        while !socket.exists() {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "podstart serve did not open {}",
                socket.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server { child, socket }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn client(&self) -> PodStarterClient<tonic::transport::Channel> {
        PodStarterClient::new(
            podstart::endpoint::channel(&Address::Unix(self.socket.clone()), Peer::Podstart)
                .expect("podstart channel"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// StartPod until PodStarted: the time at the client and the event.
pub(crate) async fn start_pod(
    client: &PodStarterClient<tonic::transport::Channel>,
    req: StartPodRequest,
) -> (Duration, PodStarted) {
    let began = Instant::now();
    let mut stream = client
        .clone()
        .start_pod(req)
        .await
        .expect("StartPod")
        .into_inner();
    while let Some(e) = stream.next().await {
        match e.expect("StartPod stream").payload {
            Some(Payload::PodStarted(s)) => return (began.elapsed(), s),
            Some(Payload::PodFailed(f)) => panic!("bench pod failed: {f:?}"),
            _ => {}
        }
    }
    panic!("the StartPod stream ended before PodStarted");
}

/// StopPod with no grace, to the end of its stream (stops and removes the
/// pod's containers and sandbox).
pub(crate) async fn stop_pod(client: &PodStarterClient<tonic::transport::Channel>, uid: &str) {
    let req = StopPodRequest {
        pod: Some(PodRef {
            uid: uid.to_string(),
            ..Default::default()
        }),
        grace_period_seconds: Some(0),
    };
    match client.clone().stop_pod(req).await {
        Ok(s) => {
            let mut s = s.into_inner();
            while let Some(e) = s.next().await {
                if let Err(e) = e {
                    eprintln!("StopPod {uid}: {e}");
                    break;
                }
            }
        }
        Err(e) => eprintln!("StopPod {uid}: {e}"),
    }
}
