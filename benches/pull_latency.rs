//! Time to PodStarted for a pod whose images are all absent: the kubelet's
//! way (each image pulled at its container's turn, pulls serialized) against
//! podstart's (every image pre-pulled at once when the request arrives, no
//! pull limit), straight from the lab registry and through a loopback proxy
//! that makes the network the limit, in the same run.
//!
//!   set -a; eval "$(scripts/containerd-lab.sh start)"; set +a
//!   cargo bench --bench pull_latency             # release, 3 rounds per row
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench pull_latency   # debug, 1 round
//!
//! Settings: the lab's `CONTAINER_RUNTIME_ENDPOINT` and `REGISTRY` (or
//! `PODSTART_BENCH_RUNTIME`, `PODSTART_BENCH_REGISTRY`),
//! `PODSTART_BENCH_ROUNDS`, and for the proxy `PODSTART_BENCH_PROXY_LATENCY_MS`
//! (added before each request, default 50, smoke 10) and
//! `PODSTART_BENCH_PROXY_MBPS` (MiB/s from the registry, default 20, smoke
//! 100; 0 = no cap).
//!
//! The pod: one init container (`true`) and three app containers
//! (`sleep 3600`), each with its own ~21 MiB image: busybox + 4 layers of
//! random data, the lab's podstart-lab/big-{1..4}:1 with those 4 layers
//! made anew and pushed as big-N:bench-<run id> at the start of the run
//! (labkit/fresh_images.rs), so that no other pod on a shared lab holds
//! them (falling back to big-N:1 with a warning when the push fails; each
//! run leaves ~80 MiB in the lab registry). Before each round the run's
//! images are removed from the node, under any name (untimed). Two `podstart serve` processes against the lab
//! containerd: kubelet-like (`--max-parallel-image-pulls 1`, requests with
//! `no_pre_pull`) and podstart's defaults (pre-pull, no limit); rounds
//! alternate them. Rows: the registry directly; through the proxy with one
//! bandwidth cap shared by all connections (a node's link); through the
//! proxy with the cap per connection (a registry or CDN that limits each
//! stream). The proxy (tokio, in this process, on 127.0.0.1: containerd
//! speaks plain HTTP to loopback registries without any hosts.toml) delays
//! each client→registry chunk that starts an HTTP request and paces the
//! registry→client bytes with a token bucket. Prints medians and their
//! ratio per row. Samples: `target/bench/pull-<row>.csv` (series
//! kubelet-like, podstart). Measures, asserts nothing.
#[path = "labkit/fresh_images.rs"]
mod fresh_images;
#[path = "labkit/mod.rs"]
mod labkit;

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use labkit::Server;
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{
    Container, PodMetadata, PodSpec, PullPolicy, StartOptions, StartPodRequest,
    pod_starter_client::PodStarterClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

const IMAGES: [&str; 4] = ["big-1", "big-2", "big-3", "big-4"];

/// The tag of the images this run pulls: `bench-<run id>` (fresh layers),
/// or `1` (the lab's own) when they could not be pushed.
static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn tag() -> &'static str {
    TAG.get().map_or("1", |t| t.as_str())
}

fn image(registry: &str, name: &str) -> String {
    format!("{registry}/podstart-lab/{name}:{}", tag())
}

/// Whether `reference` names one of this run's images (or, by its tag, a
/// fresh image an earlier run left).
fn ours(reference: &str) -> bool {
    IMAGES.iter().any(|n| {
        reference.contains(&format!("/podstart-lab/{n}:{}", tag()))
            || reference.contains(&format!("/podstart-lab/{n}:bench-"))
    })
}

fn request(registry: &str, name: &str, pre_pull: bool) -> (String, StartPodRequest) {
    let c = |name: &str, img: &str, cmd: &[&str]| {
        let mut c = Container {
            name: name.into(),
            image: image(registry, img),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        c.set_image_pull_policy(PullPolicy::IfNotPresent);
        c
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let spec = PodSpec {
        metadata: Some(PodMetadata {
            name: name.into(),
            namespace: labkit::NAMESPACE.into(),
            uid: uid.clone(),
            ..Default::default()
        }),
        init_containers: vec![c("init", IMAGES[0], &["true"])],
        containers: vec![
            c("app-1", IMAGES[1], &["sleep", "3600"]),
            c("app-2", IMAGES[2], &["sleep", "3600"]),
            c("app-3", IMAGES[3], &["sleep", "3600"]),
        ],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    };
    let req = StartPodRequest {
        pod: Some(spec),
        options: Some(StartOptions {
            no_pre_pull: !pre_pull,
            no_pull_progress: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    (uid, req)
}

/// Removes this run's images from the node under whatever name they have
/// (removing by id drops all its names, so its content is collected).
/// Adds the ids of the images it removes to `seen`.
async fn uncache(images: &mut ImageServiceClient<Channel>, seen: &mut HashSet<String>) {
    let list = images
        .list_images(cri::ListImagesRequest { filter: None })
        .await
        .expect("ListImages")
        .into_inner()
        .images;
    for i in list {
        if i.repo_tags.iter().any(|r| ours(r)) {
            seen.insert(i.id.clone());
            images
                .remove_image(cri::RemoveImageRequest {
                    image: Some(cri::ImageSpec {
                        image: i.id.clone(),
                        ..Default::default()
                    }),
                })
                .await
                .expect("RemoveImage");
        }
    }
}

/// Whether a container on the node (another pod's: this bench's own are
/// removed by now) runs one of this run's images: its layers then stay
/// unpacked, and containerd fetches only what is missing, so the round
/// pulls less (with the fresh images of labkit/fresh_images.rs, only when
/// they could not be pushed and the lab's own are used).
async fn in_use_elsewhere(rt: &mut RuntimeServiceClient<Channel>, seen: &HashSet<String>) -> bool {
    let Ok(list) = rt
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
    else {
        return false;
    };
    list.into_inner().containers.iter().any(|c| {
        seen.contains(&c.image_ref)
            || c.image
                .as_ref()
                .is_some_and(|i| seen.contains(&i.image) || ours(&i.image))
    })
}

/// A shared or per-connection bandwidth cap: each chunk waits until the
/// link would have carried it.
struct Bucket {
    bytes_per_sec: f64,
    next: Mutex<Instant>,
}

impl Bucket {
    fn new(bytes_per_sec: f64) -> Arc<Bucket> {
        Arc::new(Bucket {
            bytes_per_sec,
            next: Mutex::new(Instant::now()),
        })
    }

    async fn take(&self, n: usize) {
        if self.bytes_per_sec <= 0.0 {
            return;
        }
        let until = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Cap {
    Shared,
    PerConnection,
}

#[derive(Clone, Copy)]
struct Shaping {
    latency: Duration,
    bytes_per_sec: f64,
    cap: Cap,
}

/// Whether a client→registry chunk begins an HTTP/1.1 request.
fn starts_request(chunk: &[u8]) -> bool {
    [
        &b"GET "[..],
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"PATCH ",
        b"DELETE ",
    ]
    .iter()
    .any(|m| chunk.starts_with(m))
}

async fn relay(client: TcpStream, upstream: String, shaping: Shaping, bucket: Arc<Bucket>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if starts_request(&buf[..n]) {
                tokio::time::sleep(shaping.latency).await;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            bucket.take(n).await;
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The proxy in front of `upstream`; runs until the process ends.
async fn start_proxy(upstream: &str, shaping: Shaping) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
    let addr = listener.local_addr().expect("proxy address");
    let upstream = upstream.to_string();
    let shared = Bucket::new(shaping.bytes_per_sec);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let bucket = match shaping.cap {
                Cap::Shared => shared.clone(),
                Cap::PerConnection => Bucket::new(shaping.bytes_per_sec),
            };
            tokio::spawn(relay(conn, upstream.clone(), shaping, bucket));
        }
    });
    addr
}

struct Row {
    name: &'static str,
    describe: String,
    /// Rounds where another pod on the node ran a big-N image.
    shared_rounds: usize,
    kubelet: Vec<Duration>,
    podstart: Vec<Duration>,
}

/// The node's CRI services, and the ids of the big-N images seen on it.
struct Node {
    images: ImageServiceClient<Channel>,
    rt: RuntimeServiceClient<Channel>,
    seen: HashSet<String>,
}

async fn measure(
    row: &mut Row,
    registry: &str,
    rounds: usize,
    node: &mut Node,
    kubelet: &PodStarterClient<Channel>,
    podstart: &PodStarterClient<Channel>,
) {
    for round in 0..rounds * 2 {
        let pre_pull = round % 2 == 1;
        uncache(&mut node.images, &mut node.seen).await;
        if in_use_elsewhere(&mut node.rt, &node.seen).await {
            row.shared_rounds += 1;
        }
        let (uid, req) = request(
            registry,
            &format!("pull-{}-{}-{round}", labkit::run_id(), row.name),
            pre_pull,
        );
        let client = if pre_pull { podstart } else { kubelet };
        let (took, _) = labkit::start_pod(client, req).await;
        labkit::stop_pod(client, &uid).await;
        eprintln!(
            "{:<28} round {:2} {:<20} {:8.1} ms",
            row.name,
            round / 2 + 1,
            if pre_pull {
                "pre-pull + parallel"
            } else {
                "kubelet-like"
            },
            labkit::ms(took)
        );
        if pre_pull {
            row.podstart.push(took);
        } else {
            row.kubelet.push(took);
        }
    }
    labkit::write_csv(
        &format!("pull-{}", row.name),
        &[("kubelet-like", &row.kubelet), ("podstart", &row.podstart)],
    );
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let machine = labkit::machine_line();
    let Some(runtime) = labkit::runtime_endpoint() else {
        println!(
            "pull_latency: skipped: no lab (set CONTAINER_RUNTIME_ENDPOINT, e.g. from scripts/containerd-lab.sh start)"
        );
        return;
    };
    let registry = ["PODSTART_BENCH_REGISTRY", "REGISTRY"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "127.0.0.1:5400".into());
    let rounds = labkit::count("ROUNDS", 3, 1);
    // Smoke mode shapes less, to stay short: the same code paths.
    let (latency_ms, mbps) = if labkit::smoke() {
        (10.0, 100.0)
    } else {
        (50.0, 20.0)
    };
    let latency =
        Duration::from_secs_f64(env_f64("PODSTART_BENCH_PROXY_LATENCY_MS", latency_ms) / 1e3);
    let mib_per_sec = env_f64("PODSTART_BENCH_PROXY_MBPS", mbps);
    let bytes_per_sec = mib_per_sec * 1024.0 * 1024.0;

    let addr = Address::parse(&runtime, Peer::Runtime).expect("runtime endpoint");
    let channel = podstart::endpoint::channel(&addr, Peer::Runtime).expect("channel");
    let mut node = Node {
        images: ImageServiceClient::new(channel.clone()),
        rt: RuntimeServiceClient::new(channel),
        seen: HashSet::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("server dir");
        d
    };
    let kubelet_dir = sub("kubelet-like");
    let podstart_dir = sub("podstart");
    labkit::remove_leftovers(&runtime, "pull-").await;
    let fresh = format!("bench-{}", labkit::run_id());
    let mut pushed = Ok(());
    for name in IMAGES {
        pushed = fresh_images::push_fresh(&registry, name, &fresh).await;
        if pushed.is_err() {
            break;
        }
    }
    match &pushed {
        Ok(()) => {
            let _ = TAG.set(fresh);
        }
        Err(e) => eprintln!("cannot push fresh images ({e}); pulling the lab's own big-N:1"),
    }
    let kubelet_server = Server::start(
        &runtime,
        Path::new(&kubelet_dir),
        &["--max-parallel-image-pulls", "1"],
    )
    .await;
    let podstart_server = Server::start(&runtime, Path::new(&podstart_dir), &[]).await;
    let (kubelet, podstart) = (kubelet_server.client(), podstart_server.client());

    let cap = if mib_per_sec > 0.0 {
        format!("{mib_per_sec} MiB/s")
    } else {
        "no cap".into()
    };
    let mut rows = vec![
        (
            None,
            Row {
                name: "direct",
                describe: format!("lab registry {registry} directly (loopback)"),
                shared_rounds: 0,
                kubelet: Vec::new(),
                podstart: Vec::new(),
            },
        ),
        (
            Some(Cap::Shared),
            Row {
                name: "proxy-shared",
                describe: format!(
                    "proxy: +{} ms per request, {cap} shared by all connections",
                    latency.as_millis()
                ),
                shared_rounds: 0,
                kubelet: Vec::new(),
                podstart: Vec::new(),
            },
        ),
        (
            Some(Cap::PerConnection),
            Row {
                name: "proxy-per-connection",
                describe: format!(
                    "proxy: +{} ms per request, {cap} per connection",
                    latency.as_millis()
                ),
                shared_rounds: 0,
                kubelet: Vec::new(),
                podstart: Vec::new(),
            },
        ),
    ];
    for (cap, row) in &mut rows {
        let via = match cap {
            None => registry.clone(),
            Some(cap) => start_proxy(
                &registry,
                Shaping {
                    latency,
                    bytes_per_sec,
                    cap: *cap,
                },
            )
            .await
            .to_string(),
        };
        measure(row, &via, rounds, &mut node, &kubelet, &podstart).await;
    }
    uncache(&mut node.images, &mut node.seen).await;
    drop((kubelet_server, podstart_server));

    println!();
    println!("### (f) pulls: kubelet-like serial against pre-pull + parallel");
    println!();
    println!("{machine}");
    println!(
        "pod: 1 init + 3 app, each its own absent ~21 MiB image (podstart-lab/big-1..4:{}); rounds: {rounds} per side, alternating",
        tag()
    );
    if let Err(e) = &pushed {
        println!(
            "warning: fresh images could not be pushed ({e}): the lab's own big-N:1 were pulled"
        );
    }
    println!();
    println!(
        "| network | kubelet-like median | p90 | pre-pull + parallel median | p90 | ratio of medians |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (_, row) in &rows {
        let (km, k90) = labkit::stats(&row.kubelet);
        let (pm, p90) = labkit::stats(&row.podstart);
        println!(
            "| {} | {} ms | {} ms | {} ms | {} ms | {:.2} |",
            row.describe,
            labkit::cell(km),
            labkit::cell(k90),
            labkit::cell(pm),
            labkit::cell(p90),
            pm / km
        );
    }
    for (_, row) in &rows {
        if row.shared_rounds > 0 {
            println!(
                "warning: {}: in {} of {} rounds another pod on the node ran a big-N image, so its layers stayed unpacked and those pulls fetched less",
                row.name,
                row.shared_rounds,
                rounds * 2
            );
        }
    }
}
