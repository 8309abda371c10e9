//! Endpoint parsing and channel construction for CRI sockets.
//!
//! Channels are lazy: a runtime that is down at start-up does not stop
//! podstart from starting; the first call reports it as UNAVAILABLE.
use std::{path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::CriError;

/// Where a CRI (or podstart) gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:///path/to.sock` or a bare absolute path.
    Unix(PathBuf),
    /// `http://host:port` (plaintext TCP, for tests and tools).
    Http(String),
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, CriError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Address::Unix(PathBuf::from(path)));
            }
        } else if s.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        } else if s.starts_with("http://") {
            return Ok(Address::Http(s.to_string()));
        }
        Err(CriError::InvalidEndpoint {
            endpoint: s.to_string(),
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Http(u) => f.write_str(u),
        }
    }
}

/// A lazily connecting channel to `addr`, with the kubelet's dial settings
/// (reconnect backoff handled by tonic, connect timeout 5 s).
pub fn channel(addr: &Address) -> Result<Channel, CriError> {
    let endpoint = endpoint(addr)?;
    Ok(match addr {
        Address::Unix(path) => endpoint.connect_with_connector_lazy(unix_connector(path.clone())),
        Address::Http(_) => endpoint.connect_lazy(),
    })
}

/// A channel to `addr` that is connected before it is returned, so a
/// missing server is reported at once.
pub async fn connect(addr: &Address) -> Result<Channel, ConnectError> {
    let endpoint = endpoint(addr).map_err(ConnectError::Endpoint)?;
    let connected = match addr {
        Address::Unix(path) => {
            endpoint
                .connect_with_connector(unix_connector(path.clone()))
                .await
        }
        Address::Http(_) => endpoint.connect().await,
    };
    connected.map_err(|e| ConnectError::Connect {
        address: addr.to_string(),
        cause: std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Endpoint(CriError),
    #[error("cannot connect to {address}: {cause}")]
    Connect { address: String, cause: String },
}

fn endpoint(addr: &Address) -> Result<Endpoint, CriError> {
    let endpoint = match addr {
        // The URI is not used for unix sockets; the connector decides.
        Address::Unix(_) => Endpoint::from_static("http://[::1]:50051"),
        Address::Http(url) => {
            Endpoint::from_shared(url.clone()).map_err(|_| CriError::InvalidEndpoint {
                endpoint: url.clone(),
            })?
        }
    };
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
}

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
            Address::parse("unix:///run/containerd/containerd.sock").unwrap(),
            Address::Unix("/run/containerd/containerd.sock".into())
        );
        assert_eq!(
            Address::parse("/tmp/x.sock").unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Address::parse("http://127.0.0.1:1").unwrap(),
            Address::Http("http://127.0.0.1:1".into())
        );
        for bad in [
            "unix://relative.sock",
            "tcp://1.2.3.4:5",
            "",
            "containerd.sock",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
