//! podstart's front door: the sockets its API is served on (`--listen`,
//! unix and TCP), TLS with client certificates, and the caller identity
//! each connection carries into its requests (`peer.rs`).
pub mod authority;
pub mod peer;

pub use authority::LocalAuthority;
pub use peer::{Caller, PeerStream};

use std::sync::Arc;

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::{StreamExt, wrappers::UnixListenerStream};

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
