//! podstart's front door: the sockets its API is served on (`--listen`,
//! given once per socket: unix sockets with owner, group and mode, TCP
//! with mutual TLS), and the caller identity each connection carries into
//! its requests (`peer.rs`). `address.rs` parses `--listen`, `tls.rs`
//! holds the TLS configuration and reads identities from client
//! certificates, `authority.rs` lets standard clients call a unix socket.
pub mod address;
pub mod authority;
pub mod conn;
pub mod peer;
pub mod tls;

use std::{path::PathBuf, sync::Arc, time::Duration};

use futures::Stream;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream, wrappers::UnixListenerStream};
use tokio_util::sync::CancellationToken;

pub use address::{AddressError, ListenAddr, UnixListen};
pub use authority::LocalAuthority;
pub use conn::Conn;
pub use peer::{Caller, PeerStream};
pub use tls::{TlsError, TlsFiles, TlsServer};

/// What the listeners are made from (the command line's share).
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Each `--listen`.
    pub addrs: Vec<ListenAddr>,
    /// TLS for TCP listeners.
    pub tls: Option<TlsFiles>,
    /// `--insecure-tcp`: plaintext TCP without TLS files.
    pub insecure_tcp: bool,
}

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted and not yet taken by the server.
const BACKLOG: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(
        "--listen {0}: TCP needs --tls-cert-file, --tls-private-key-file and --client-ca-file (or --insecure-tcp for plaintext)"
    )]
    TcpWithoutTls(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The listeners, bound; `incoming` serves them.
#[derive(Debug)]
pub struct Bound {
    sockets: Vec<BoundSocket>,
    tls: Option<TlsServer>,
}

#[derive(Debug)]
enum BoundSocket {
    Unix {
        listener: UnixListener,
        name: Arc<str>,
        path: PathBuf,
        gid: Option<u32>,
    },
    Tcp {
        listener: TcpListener,
        name: Arc<str>,
        tls: bool,
    },
}

/// Binds every listener: unix sockets (replacing only a stale socket,
/// then owner, group and mode set), TCP sockets (TLS unless
/// `--insecure-tcp`, which is logged as a warning).
pub async fn bind(config: &ListenConfig) -> Result<Bound, ListenError> {
    let tls = match &config.tls {
        Some(files) => Some(TlsServer::load(files.clone())?),
        None => None,
    };
    let mut sockets = Vec::new();
    for addr in &config.addrs {
        let name: Arc<str> = addr.to_string().into();
        let err = |source| ListenError::Bind {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Unix(u) => {
                let listener = bind_unix(u).map_err(err)?;
                let gid = std::fs::metadata(&u.path)
                    .ok()
                    .map(|m| std::os::unix::fs::MetadataExt::gid(&m));
                sockets.push(BoundSocket::Unix {
                    listener,
                    name,
                    path: u.path.clone(),
                    gid,
                });
            }
            ListenAddr::Tcp(hostport) => {
                if tls.is_none() && !config.insecure_tcp {
                    return Err(ListenError::TcpWithoutTls(addr.to_string()));
                }
                let listener = TcpListener::bind(hostport.as_str()).await.map_err(err)?;
                if tls.is_none() {
                    tracing::warn!(
                        listen = %addr,
                        "--insecure-tcp: serving the API over PLAINTEXT TCP; anyone who can reach this port \
                         can start any pod the policy grants to an anonymous caller"
                    );
                }
                sockets.push(BoundSocket::Tcp {
                    listener,
                    name,
                    tls: tls.is_some(),
                });
            }
        }
    }
    Ok(Bound { sockets, tls })
}

impl Bound {
    /// Where each listener is: for logs and for tests (a TCP port of 0 is
    /// bound to a free one).
    pub fn addresses(&self) -> Vec<String> {
        self.sockets
            .iter()
            .map(|s| match s {
                BoundSocket::Unix { path, .. } => format!("unix://{}", path.display()),
                BoundSocket::Tcp { listener, .. } => listener
                    .local_addr()
                    .map_or_else(|_| "tcp://?".into(), |a| format!("tcp://{a}")),
            })
            .collect()
    }

    /// The unix socket paths, to remove at exit.
    pub fn unix_paths(&self) -> Vec<PathBuf> {
        self.sockets
            .iter()
            .filter_map(|s| match s {
                BoundSocket::Unix { path, .. } => Some(path.clone()),
                BoundSocket::Tcp { .. } => None,
            })
            .collect()
    }

    /// Every listener's connections, each with its caller, until
    /// `shutdown`: TLS handshakes run beside the accepting, a failed one
    /// is logged (at debug: scanners are common) and dropped. The TLS
    /// files are followed for changes meanwhile.
    pub fn incoming(
        self,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = std::io::Result<PeerStream<Conn>>> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        if let Some(tls) = &self.tls {
            tokio::spawn(tls.clone().follow(tls::RELOAD_EVERY, shutdown.clone()));
        }
        for socket in self.sockets {
            let tx = tx.clone();
            let token = shutdown.clone();
            match socket {
                BoundSocket::Unix {
                    listener,
                    name,
                    gid,
                    ..
                } => {
                    let mut conns = unix_incoming(listener, name, gid);
                    tokio::spawn(async move {
                        loop {
                            let conn = tokio::select! {
                                _ = token.cancelled() => return,
                                c = conns.next() => c,
                            };
                            match conn {
                                Some(Ok(c)) => {
                                    let (stream, caller) = c.into_parts();
                                    let c = PeerStream::new(Conn::Unix(Box::new(stream)), caller);
                                    if tx.send(Ok(c)).await.is_err() {
                                        return;
                                    }
                                }
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "unix socket accept failed")
                                }
                                None => return,
                            }
                        }
                    });
                }
                BoundSocket::Tcp {
                    listener,
                    name,
                    tls,
                } => {
                    let tls = tls.then(|| self.tls.clone()).flatten();
                    tokio::spawn(accept_tcp(listener, name, tls, tx, token));
                }
            }
        }
        ReceiverStream::new(rx)
    }
}

async fn accept_tcp(
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<TlsServer>,
    tx: mpsc::Sender<std::io::Result<PeerStream<Conn>>>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listen = %name, error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = &tls else {
            let conn = PeerStream::new(Conn::Tcp(stream), Caller::named(Vec::new(), name.clone()));
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
            continue;
        };
        let (acceptor, tx, name) = (tls.acceptor(), tx.clone(), name.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let ids = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| tls::identities(c))
                        .unwrap_or_default();
                    let conn = PeerStream::new(Conn::Tls(Box::new(tls)), Caller::named(ids, name));
                    let _ = tx.send(Ok(conn)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The connections of a unix socket, each carrying its peer's identity,
/// any `:authority` accepted (`authority.rs`). `name` is the listener as
/// configured; `socket_gid` the socket's group.
pub fn unix_incoming(
    listener: UnixListener,
    name: Arc<str>,
    socket_gid: Option<u32>,
) -> impl Stream<Item = std::io::Result<PeerStream<LocalAuthority<UnixStream>>>> {
    UnixListenerStream::new(listener).map(move |conn| {
        let stream = conn?;
        let cred = stream.peer_cred()?;
        let caller = Caller::unix(cred.uid(), cred.gid(), name.clone(), socket_gid);
        Ok(PeerStream::new(LocalAuthority::new(stream), caller))
    })
}

/// Binds a unix socket, then sets its owner, group and mode. Something
/// already at the path is removed only when it is a socket nobody answers
/// on (a stale one); anything else (a file, a directory, a link, a live
/// socket) is an error and stays.
fn bind_unix(u: &UnixListen) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = &u.path;
    let refuse = |kind, text: String| std::io::Error::new(kind, text);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(refuse(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; nothing was removed",
                    path.display()
                ),
            ));
        }
        // A live server on this socket answers a connect.
        Ok(_) if std::os::unix::net::UnixStream::connect(path).is_ok() => {
            return Err(refuse(
                std::io::ErrorKind::AddrInUse,
                format!("another process is serving on {}", path.display()),
            ));
        }
        Ok(_) => std::fs::remove_file(path)?,
    }
    let listener = UnixListener::bind(path)?;
    if u.owner.is_some() || u.group.is_some() {
        std::os::unix::fs::chown(path, u.owner, u.group)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(u.mode))?;
    Ok(listener)
}
