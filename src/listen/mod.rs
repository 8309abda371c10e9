//! podstart's front door: the sockets its API is served on (`--listen`,
//! unix and TCP), TLS with client certificates, and the caller identity
//! each connection carries into its requests (`peer.rs`).
pub mod peer;

pub use peer::{Caller, PeerStream, unix_peer};

use std::sync::Arc;

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::{StreamExt, wrappers::UnixListenerStream};

/// The connections of a unix socket, each carrying its peer's identity.
/// `name` is the listener as configured; `socket_gid` the socket's group.
pub fn unix_incoming(
    listener: UnixListener,
    name: Arc<str>,
    socket_gid: Option<u32>,
) -> impl Stream<Item = std::io::Result<PeerStream<UnixStream>>> {
    UnixListenerStream::new(listener)
        .map(move |conn| conn.and_then(|s| unix_peer(s, name.clone(), socket_gid)))
}
