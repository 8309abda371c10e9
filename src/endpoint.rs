//! The endpoints podstart dials: the CRI runtime and image services (and
//! containerd's content service on the same socket) for `cri/` and
//! `images/`, and a podstart daemon for `cli/`. Parses endpoint strings and
//! builds channels with the kubelet's dial settings (connect timeout 5 s,
//! reconnect back-off left to tonic), lazily or connected at once. Every
//! error names what was being dialed.
use std::{fmt, path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What listens at an endpoint, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The CRI runtime service (containerd, CRI-O).
    Runtime,
    /// The CRI image service (often the runtime's own socket).
    Image,
    /// containerd's content service, on the CRI socket.
    Content,
    /// A podstart daemon's API.
    Podstart,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Peer::Runtime => "CRI runtime",
            Peer::Image => "CRI image",
            Peer::Content => "containerd content",
            Peer::Podstart => "podstart",
        })
    }
}

/// Where a gRPC server (a CRI runtime, podstart) listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:///path/to.sock` or a bare absolute path.
    Unix(PathBuf),
    /// `http://host:port` (plaintext TCP, for tests and tools).
    Http(String),
    /// `https://host:port`: TLS, the server verified against a given CA,
    /// with a client certificate (a podstart daemon's TCP listener).
    Https(String),
}

impl Address {
    /// Parses the endpoint of `peer` (named in the error).
    pub fn parse(s: &str, peer: Peer) -> Result<Address, EndpointError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Address::Unix(PathBuf::from(path)));
            }
        } else if s.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        } else if s.starts_with("https://") && peer == Peer::Podstart {
            let address = Address::Https(s.to_string());
            return endpoint(&address, peer).map(|_| address);
        } else if s.starts_with("http://") {
            // A malformed URL is reported here rather than at the first dial.
            let address = Address::Http(s.to_string());
            return endpoint(&address, peer).map(|_| address);
        }
        Err(EndpointError {
            peer,
            endpoint: s.to_string(),
            source: None,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Http(u) | Address::Https(u) => f.write_str(u),
        }
    }
}

/// The endpoint is neither a unix socket path nor an http URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid {peer} endpoint {endpoint:?}: expected unix:///absolute/path or http://host:port (https://host:port for podstart)"
)]
pub struct EndpointError {
    pub peer: Peer,
    pub endpoint: String,
    /// Why tonic refused an http URL; none for an unknown scheme.
    #[source]
    source: Option<tonic::transport::Error>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Nothing answered at the address (no socket, refused, timed out).
    #[error("cannot connect to {address} ({peer} endpoint): {}", cause(source))]
    Connect {
        peer: Peer,
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Tls(ClientTlsError),
}

/// What went wrong under tonic's generic "transport error".
fn cause(e: &tonic::transport::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
}

/// A channel to `addr` that connects on first use: a peer that is down
/// when podstart starts does not stop podstart from starting; the first
/// call reports it as UNAVAILABLE.
pub fn channel(addr: &Address, peer: Peer) -> Result<Channel, EndpointError> {
    let endpoint = endpoint(addr, peer)?;
    Ok(match addr {
        Address::Unix(path) => endpoint.connect_with_connector_lazy(unix_connector(path.clone())),
        Address::Http(_) | Address::Https(_) => endpoint.connect_lazy(),
    })
}

/// A channel to `addr` that is connected before it is returned, so an
/// absent peer is reported at once.
pub async fn connect(addr: &Address, peer: Peer) -> Result<Channel, ConnectError> {
    let endpoint = endpoint(addr, peer)?;
    let connected = match addr {
        Address::Unix(path) => {
            endpoint
                .connect_with_connector(unix_connector(path.clone()))
                .await
        }
        Address::Http(_) | Address::Https(_) => endpoint.connect().await,
    };
    connected.map_err(|source| ConnectError::Connect {
        peer,
        address: addr.to_string(),
        source,
    })
}

fn endpoint(addr: &Address, peer: Peer) -> Result<Endpoint, EndpointError> {
    let endpoint = match addr {
        // The URI is not dialed for unix sockets; the connector is.
        Address::Unix(_) => Endpoint::from_static("http://[::1]:50051"),
        // TLS is made by `tls_connector`: tonic dials plain TCP.
        Address::Https(url) => Endpoint::from_shared(url.replacen("https://", "http://", 1))
            .map_err(|source| EndpointError {
                peer,
                endpoint: url.clone(),
                source: Some(source),
            })?,
        Address::Http(url) => {
            Endpoint::from_shared(url.clone()).map_err(|source| EndpointError {
                peer,
                endpoint: url.clone(),
                source: Some(source),
            })?
        }
    };
    Ok(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
}

/// What a client presents to, and checks of, an `https://` podstart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `--certificate-authority`: the CA the server's certificate must
    /// chain to.
    pub ca: Option<PathBuf>,
    /// `--client-certificate` and `--client-key`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("{0} is an https endpoint: give --certificate-authority")]
    NoCa(String),
    #[error(
        "{0} is not an https endpoint: --certificate-authority, --client-certificate and --client-key apply to https:// only"
    )]
    NotHttps(String),
    #[error("{flag} {path}: {what}")]
    File {
        flag: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error("TLS: {0}")]
    Config(String),
}

/// A connected channel to a podstart daemon: over TLS with `tls` for an
/// `https://` address, else as `connect`.
pub async fn connect_api(addr: &Address, tls: &ClientTls) -> Result<Channel, ConnectError> {
    let Address::Https(url) = addr else {
        if *tls != ClientTls::default() {
            return Err(ConnectError::Tls(ClientTlsError::NotHttps(
                addr.to_string(),
            )));
        }
        return connect(addr, Peer::Podstart).await;
    };
    let config = client_config(url, tls).map_err(ConnectError::Tls)?;
    let endpoint = endpoint(addr, Peer::Podstart)?;
    let uri: Uri = url.parse().map_err(|_| EndpointError {
        peer: Peer::Podstart,
        endpoint: url.clone(),
        source: None,
    })?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = pki_types::ServerName::try_from(host.clone()).map_err(|e| {
        ConnectError::Tls(ClientTlsError::Config(format!("server name {host:?}: {e}")))
    })?;
    let connector = tower::service_fn(move |_: Uri| {
        let (host, name, config) = (host.clone(), name.clone(), config.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|source| ConnectError::Connect {
            peer: Peer::Podstart,
            address: addr.to_string(),
            source,
        })
}

fn client_config(
    url: &str,
    tls: &ClientTls,
) -> Result<std::sync::Arc<rustls::ClientConfig>, ClientTlsError> {
    use pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let file = |flag, path: &PathBuf, what: String| ClientTlsError::File {
        flag,
        path: path.clone(),
        what,
    };
    let ca = tls
        .ca
        .as_ref()
        .ok_or_else(|| ClientTlsError::NoCa(url.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)
        .map_err(|e| file("--certificate-authority", ca, e.to_string()))?
    {
        let c = c.map_err(|e| file("--certificate-authority", ca, e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| file("--certificate-authority", ca, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(file(
            "--certificate-authority",
            ca,
            "no certificate in it".into(),
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientTlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file("--client-certificate", cert, e.to_string()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file("--client-key", key, e.to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ClientTlsError::Config(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// Dials a unix socket. tonic 0.14 dials `unix:` endpoints itself, but its
/// own unix connector ignores `connect_timeout` (only custom connectors and
/// TCP get one), so podstart keeps this one to bound every dial.
fn unix_connector(
    path: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<tokio::net::UnixStream>>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            Address::parse("unix:///run/containerd/containerd.sock", Peer::Runtime).unwrap(),
            Address::Unix("/run/containerd/containerd.sock".into())
        );
        assert_eq!(
            Address::parse("/tmp/x.sock", Peer::Runtime).unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Address::parse("http://127.0.0.1:1", Peer::Runtime).unwrap(),
            Address::Http("http://127.0.0.1:1".into())
        );
        for bad in [
            "unix://relative.sock",
            "tcp://1.2.3.4:5",
            "",
            "containerd.sock",
            "http://bad host",
        ] {
            assert!(
                Address::parse(bad, Peer::Runtime).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn invalid_endpoints_name_what_was_dialed() {
        let err = Address::parse("tcp://1.2.3.4:5", Peer::Podstart).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid podstart endpoint"),
            "{err}"
        );
        let err = Address::parse("containerd.sock", Peer::Runtime).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid CRI runtime endpoint"),
            "{err}"
        );
        // tonic's reason for refusing a URL stays in the chain.
        let err = Address::parse("http://bad host", Peer::Image).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn a_failed_connect_names_the_peer_and_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("none.sock"));
        let err = connect(&addr, Peer::Podstart).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to {addr} (podstart endpoint): ")),
            "{text}"
        );
        let mut chain = std::iter::successors(std::error::Error::source(&err), |e| e.source());
        assert!(
            chain.any(|e| e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)),
            "{err:?}"
        );
    }
}
