//! What the front door costs a call: the same calls to one `podstart serve`
//! process (simulated runtime inside it) over its unix socket and over its
//! mutual-TLS TCP listener (certificates made here).
//!
//!   PODSTART_BENCH_CALLS=2000 cargo bench --bench front_door
//!
//! Per transport, in alternating blocks of 100 on connections made once:
//! ListPods (one unary call; the runtime lists its sandboxes) and
//! StartPod + StopPod of a one-container pod (two streams read to their
//! end). Also the time to make a connection (TCP + TLS 1.3 handshake with
//! the client certificate, or a unix connect). Prints medians and p99 and
//! the ratio to the unix socket. Measures, asserts nothing.
use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use podstart::endpoint::{Address, ClientTls, Peer, connect_api};
use podstart::proto::v1::{
    Container, ListPodsRequest, PodMetadata, PodRef, PodSpec, PullPolicy, StartPodRequest,
    StopPodRequest, pod_starter_client::PodStarterClient,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const IMAGE: &str = "registry.test/podstart/busybox:1.0";
const BLOCK: usize = 100;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA, a server certificate for localhost and a client certificate,
/// written into `dir`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: Vec<SanType>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    leaf(
        "server",
        vec![SanType::DnsName("localhost".try_into().unwrap())],
    );
    leaf(
        "client",
        vec![SanType::URI("spiffe://bench/client".try_into().unwrap())],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(i: usize) -> StartPodRequest {
    let mut c = Container {
        name: "app".into(),
        image: IMAGE.into(),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    };
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    StartPodRequest {
        pod: Some(PodSpec {
            metadata: Some(PodMetadata {
                name: format!("door-{i}"),
                namespace: "bench".into(),
                uid: format!("door-{i}"),
                ..Default::default()
            }),
            containers: vec![c],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn drain(mut s: tonic::Streaming<podstart::proto::v1::StartEvent>) {
    while let Some(e) = s.next().await {
        e.unwrap();
    }
}

async fn start_stop(client: &mut PodStarterClient<Channel>, i: usize) {
    drain(client.start_pod(request(i)).await.unwrap().into_inner()).await;
    let stop = StopPodRequest {
        pod: Some(PodRef {
            uid: format!("door-{i}"),
            ..Default::default()
        }),
        grace_period_seconds: Some(0),
    };
    drain(client.stop_pod(stop).await.unwrap().into_inner()).await;
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn row(what: &str, unix: &mut [Duration], tls: &mut [Duration]) {
    unix.sort();
    tls.sort();
    let (u, t) = (percentile(unix, 0.5), percentile(tls, 0.5));
    println!(
        "| {what} | {:?} / {:?} | {:?} / {:?} | {:.2} |",
        u,
        percentile(unix, 0.99),
        t,
        percentile(tls, 0.99),
        t.as_secs_f64() / u.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("PODSTART_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let socket = dir.path().join("p.sock");
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_podstart");
    let _serve = Killed(
        Command::new(bin)
            .args(["serve", "--runtime-endpoint", "sim"])
            .arg(format!("--metrics-listen=127.0.0.1:{}", free_port()))
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg(format!("--listen=tcp://127.0.0.1:{port}"))
            .arg(format!(
                "--tls-cert-file={}",
                dir.path().join("server.pem").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                dir.path().join("server.key").display()
            ))
            .arg(format!(
                "--client-ca-file={}",
                dir.path().join("ca.pem").display()
            ))
            .arg("--pod-log-root")
            .arg(dir.path().join("pods"))
            .arg("--pod-state-root")
            .arg(dir.path().join("state"))
            .env("PODSTART_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() || !socket.exists() {
        assert!(Instant::now() < deadline, "podstart did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unix_addr = Address::Unix(socket.clone());
    let tls_addr = Address::parse(&format!("https://localhost:{port}"), Peer::Podstart).unwrap();
    let tls = ClientTls {
        ca: Some(dir.path().join("ca.pem")),
        identity: Some((dir.path().join("client.pem"), dir.path().join("client.key"))),
    };
    let none = ClientTls::default();
    let mut unix = PodStarterClient::new(connect_api(&unix_addr, &none).await.unwrap());
    let mut secure = PodStarterClient::new(connect_api(&tls_addr, &tls).await.unwrap());

    let (mut lu, mut lt, mut su, mut st, mut cu, mut ct) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Warm-up, untimed.
    for i in 0..BLOCK {
        unix.list_pods(ListPodsRequest::default()).await.unwrap();
        secure.list_pods(ListPodsRequest::default()).await.unwrap();
        start_stop(&mut unix, 1_000_000 + i).await;
    }
    let mut n = 0;
    while n < calls {
        for (client, out) in [(&mut unix, &mut lu), (&mut secure, &mut lt)] {
            for _ in 0..BLOCK {
                let t = Instant::now();
                client.list_pods(ListPodsRequest::default()).await.unwrap();
                out.push(t.elapsed());
            }
        }
        for (k, (client, out)) in [(&mut unix, &mut su), (&mut secure, &mut st)]
            .into_iter()
            .enumerate()
        {
            for i in 0..BLOCK / 4 {
                let t = Instant::now();
                start_stop(client, 2 * n + k * BLOCK + i).await;
                out.push(t.elapsed());
            }
        }
        for _ in 0..BLOCK / 10 {
            let t = Instant::now();
            let c = connect_api(&unix_addr, &none).await.unwrap();
            PodStarterClient::new(c)
                .list_pods(ListPodsRequest::default())
                .await
                .unwrap();
            cu.push(t.elapsed());
            let t = Instant::now();
            let c = connect_api(&tls_addr, &tls).await.unwrap();
            PodStarterClient::new(c)
                .list_pods(ListPodsRequest::default())
                .await
                .unwrap();
            ct.push(t.elapsed());
        }
        n += BLOCK;
    }
    println!(
        "front door: {} ListPods, {} StartPod+StopPod, {} new connections per transport",
        lu.len(),
        su.len(),
        cu.len()
    );
    println!("| call | unix socket p50 / p99 | mTLS TCP p50 / p99 | ratio (p50) |");
    println!("| --- | --- | --- | --- |");
    row("ListPods", &mut lu, &mut lt);
    row("StartPod + StopPod (1 container)", &mut su, &mut st);
    row("new connection + ListPods", &mut cu, &mut ct);
}
