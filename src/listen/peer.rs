//! Who is on the other end of a connection: the identities a caller goes
//! by, taken from the transport (SO_PEERCRED on a unix socket, the client
//! certificate on TLS), and handed to every request of the connection
//! through tonic's `Connected` (the request extensions carry a `Caller`).
use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The caller of one connection, as every request on it sees it
/// (`request.extensions().get::<Caller>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Every name the caller goes by: for a unix socket peer `unix:uid=N`
    /// and `unix:gid=N`; for a TLS client its certificate's URI SANs as
    /// they are (SPIFFE IDs), `dns:NAME` for each DNS SAN and `cn:NAME`
    /// for the subject's common name. Empty for a plaintext TCP peer.
    pub identities: Arc<[String]>,
    /// The listener the connection came through, as given to `--listen`.
    pub listener: Arc<str>,
    /// The group owning the unix socket the caller connected to (the
    /// default policy admits its members); None on TCP.
    pub socket_gid: Option<u32>,
}

impl Caller {
    /// A unix socket peer with the credentials the kernel gave.
    pub fn unix(uid: u32, gid: u32, listener: Arc<str>, socket_gid: Option<u32>) -> Caller {
        Caller {
            identities: vec![format!("unix:uid={uid}"), format!("unix:gid={gid}")].into(),
            listener,
            socket_gid,
        }
    }

    /// A caller known by `identities` (a TLS client, or none for
    /// plaintext TCP).
    pub fn named(identities: Vec<String>, listener: Arc<str>) -> Caller {
        Caller {
            identities: identities.into(),
            listener,
            socket_gid: None,
        }
    }
}

/// The identities, comma-separated, or `anonymous`: for logs, spans and
/// refusals.
impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.identities.is_empty() {
            return f.write_str("anonymous");
        }
        f.write_str(&self.identities.join(","))
    }
}

/// A connection with the caller it carries: tonic puts the `Caller` in
/// every request's extensions.
#[derive(Debug)]
pub struct PeerStream<T> {
    inner: T,
    caller: Caller,
}

impl<T> PeerStream<T> {
    pub fn new(inner: T, caller: Caller) -> PeerStream<T> {
        PeerStream { inner, caller }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn into_parts(self) -> (T, Caller) {
        (self.inner, self.caller)
    }
}

impl<T> tonic::transport::server::Connected for PeerStream<T> {
    type ConnectInfo = Caller;

    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PeerStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PeerStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_prints_its_identities_or_anonymous() {
        let u = Caller::unix(1000, 100, "unix:///s".into(), Some(100));
        assert_eq!(u.to_string(), "unix:uid=1000,unix:gid=100");
        let t = Caller::named(vec![], "tcp://0.0.0.0:1".into());
        assert_eq!(t.to_string(), "anonymous");
    }
}
