//! The front door as a process: `--listen tcp://` with mutual TLS
//! (certificates made here with rcgen), callers identified by their
//! certificates and by SO_PEERCRED, certificate files rotated under a
//! running podstart, plaintext TCP only with `--insecure-tcp`, and unix
//! socket owner/group/mode.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use podstart::endpoint::{Address, ClientTls, Peer, connect_api};
use podstart::proto::v1::{ListPodsRequest, pod_starter_client::PodStarterClient};

use crate::certs::Ca;
use crate::net::free_port;
use crate::process::{Proc, podstart_bin, wait_for};

/// A `podstart serve` on the simulated runtime with a unix socket and a
/// TLS listener, its log in a file.
struct Server {
    _child: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    async fn start(dir: &Path, extra: &[String]) -> Server {
        let port = free_port();
        let socket = dir.join("p.sock");
        let log = dir.join("serve.log");
        let child = Command::new(podstart_bin())
            .args(["serve", "--runtime-endpoint", "sim"])
            .arg(format!("--metrics-listen=127.0.0.1:{}", free_port()))
            .arg(format!("--listen=unix://{}", socket.display()))
            .arg(format!("--listen=tcp://127.0.0.1:{port}"))
            .arg("--pod-log-root")
            .arg(dir.join("pods"))
            .arg("--pod-state-root")
            .arg(dir.join("state"))
            .args(extra)
            .env("PODSTART_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let child = Proc(child);
        wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the TLS listener",
            Duration::from_secs(20),
        )
        .await;
        Server {
            _child: child,
            port,
            log,
        }
    }

    fn url(&self, host: &str) -> Address {
        Address::parse(&format!("https://{host}:{}", self.port), Peer::Podstart).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// The TLS flags for the files in `dir`.
fn tls_flags(dir: &Path) -> Vec<String> {
    vec![
        format!("--tls-cert-file={}", dir.join("server.pem").display()),
        format!(
            "--tls-private-key-file={}",
            dir.join("server.key").display()
        ),
        format!("--client-ca-file={}", dir.join("clients-ca.pem").display()),
    ]
}

/// One ListPods over a fresh connection.
async fn list(addr: &Address, tls: &ClientTls) -> Result<usize, String> {
    let channel = connect_api(addr, tls).await.map_err(|e| e.to_string())?;
    PodStarterClient::new(channel)
        .list_pods(ListPodsRequest::default())
        .await
        .map(|r| r.into_inner().pods.len())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

fn client(ca: &Path, cert: Option<(PathBuf, PathBuf)>) -> ClientTls {
    ClientTls {
        ca: Some(ca.to_path_buf()),
        identity: cert,
    }
}

#[tokio::test]
async fn mtls_callers_are_identified_and_everyone_else_is_refused_at_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (servers, clients, strangers) = (Ca::new("servers"), Ca::new("clients"), Ca::new("other"));
    servers.issue(dir, "server", "node-1", &["localhost", "127.0.0.1"]);
    servers.write(&dir.join("servers-ca.pem"));
    clients.write(&dir.join("clients-ca.pem"));
    let ok = clients.issue(
        dir,
        "orchestrator",
        "orchestrator",
        &[
            "uri:spiffe://podstart.test/ns/sched/sa/orchestrator",
            "orch.podstart.test",
        ],
    );
    let stranger = strangers.issue(dir, "stranger", "stranger", &["uri:spiffe://elsewhere/x"]);
    let server = Server::start(dir, &tls_flags(dir)).await;
    let ca = dir.join("servers-ca.pem");

    // By name and by IP: the server certificate names both.
    for host in ["localhost", "127.0.0.1"] {
        assert_eq!(
            list(&server.url(host), &client(&ca, Some(ok.clone()))).await,
            Ok(0)
        );
    }
    let log = server.log();
    assert!(
        log.contains(
            "caller=spiffe://podstart.test/ns/sched/sa/orchestrator,dns:orch.podstart.test,cn:orchestrator"
        ),
        "the access log names the caller by its certificate:\n{log}"
    );

    // No client certificate, one from another CA, plaintext: refused
    // before any request is read.
    let refused = [
        ("no certificate", client(&ca, None), server.url("localhost")),
        (
            "another CA",
            client(&ca, Some(stranger)),
            server.url("localhost"),
        ),
        (
            "plaintext",
            ClientTls::default(),
            Address::parse(&format!("http://127.0.0.1:{}", server.port), Peer::Podstart).unwrap(),
        ),
    ];
    for (what, tls, addr) in refused {
        let got = list(&addr, &tls).await;
        assert!(got.is_err(), "{what}: {got:?}");
    }
    // The server's certificate is checked too: a client that trusts
    // another CA does not talk to it.
    strangers.write(&dir.join("wrong-ca.pem"));
    let got = list(
        &server.url("localhost"),
        &client(&dir.join("wrong-ca.pem"), Some(ok)),
    )
    .await;
    assert!(got.is_err(), "{got:?}");
    let log = server.log();
    assert!(
        !log.contains("spiffe://elsewhere"),
        "no call was made as the stranger:\n{log}"
    );
}

#[tokio::test]
async fn rotated_certificate_files_serve_new_connections_and_keep_open_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (servers, clients) = (Ca::new("servers"), Ca::new("clients"));
    servers.issue(dir, "server", "node-1", &["localhost"]);
    servers.write(&dir.join("servers-ca.pem"));
    clients.write(&dir.join("clients-ca.pem"));
    let old = clients.issue(dir, "old", "old", &["uri:spiffe://podstart.test/old"]);
    let server = Server::start(dir, &tls_flags(dir)).await;
    let ca = dir.join("servers-ca.pem");
    let addr = server.url("localhost");

    // A connection made before the rotation.
    let open = connect_api(&addr, &client(&ca, Some(old.clone())))
        .await
        .unwrap();
    let mut open = PodStarterClient::new(open);
    open.list_pods(ListPodsRequest::default()).await.unwrap();

    // Rotate everything: a new server CA and certificate, a new client CA
    // (written as a mounted Secret is: the files replaced).
    let (servers2, clients2) = (Ca::new("servers-2"), Ca::new("clients-2"));
    let rotated = tmp.path().join("rotated");
    std::fs::create_dir(&rotated).unwrap();
    let (cert, key) = servers2.issue(&rotated, "server", "node-1-rotated", &["localhost"]);
    std::fs::rename(key, dir.join("server.key")).unwrap();
    std::fs::rename(cert, dir.join("server.pem")).unwrap();
    clients2.write(&dir.join("clients-ca.pem"));
    servers2.write(&dir.join("servers-2-ca.pem"));
    let new = clients2.issue(dir, "new", "new", &["uri:spiffe://podstart.test/new"]);
    let ca2 = dir.join("servers-2-ca.pem");

    // New connections get the new files within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if list(&addr, &client(&ca2, Some(new.clone()))).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        list(&addr, &client(&ca, Some(old))).await.is_err(),
        "the old client CA no longer admits"
    );
    // The connection made before is still served.
    open.list_pods(ListPodsRequest::default()).await.unwrap();
    assert!(server.log().contains("changed: new connections use them"));
}

#[tokio::test]
async fn tcp_needs_tls_unless_insecure_tcp_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(podstart_bin())
        .args(["serve", "--runtime-endpoint", "sim"])
        .arg(format!("--metrics-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--listen=tcp://127.0.0.1:{}", free_port()))
        .arg("--pod-log-root")
        .arg(tmp.path().join("pods"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TCP needs --tls-cert-file, --tls-private-key-file and --client-ca-file"),
        "{err}"
    );

    let server = Server::start(tmp.path(), &["--insecure-tcp".to_string()]).await;
    let addr =
        Address::parse(&format!("http://127.0.0.1:{}", server.port), Peer::Podstart).unwrap();
    assert_eq!(list(&addr, &ClientTls::default()).await, Ok(0));
    let log = server.log();
    assert!(log.contains("PLAINTEXT"), "{log}");
    assert!(log.contains("caller=anonymous"), "{log}");
}

/// The uid and gid of this process, as the kernel reports them.
fn own_ids() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    (field("Uid:"), field("Gid:"))
}

#[tokio::test]
async fn unix_callers_are_known_by_their_peer_credentials_and_sockets_get_their_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("api.sock");
    let (uid, gid) = own_ids();
    let listen = format!("--listen=unix://{}?mode=0600&group={gid}", socket.display());
    let log = tmp.path().join("serve.log");
    let _child = Proc(
        Command::new(podstart_bin())
            .args(["serve", "--runtime-endpoint", "sim"])
            .arg(format!("--metrics-listen=127.0.0.1:{}", free_port()))
            .arg(&listen)
            .arg("--pod-log-root")
            .arg(tmp.path().join("pods"))
            .arg("--pod-state-root")
            .arg(tmp.path().join("state"))
            .env("PODSTART_LOG_LEVEL", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the API socket",
        Duration::from_secs(20),
    )
    .await;
    let meta = std::fs::metadata(&socket).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid().to_string(), gid);

    let addr = Address::Unix(socket.clone());
    assert_eq!(list(&addr, &ClientTls::default()).await, Ok(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("caller=unix:uid={uid},unix:gid={gid}")),
        "{text}"
    );
}
