//! podstart's front door: the sockets its API is served on (`--listen`,
//! unix and TCP), TLS with client certificates, and the caller identity
//! each connection carries into its requests (`peer.rs`).
pub mod peer;

pub use peer::Caller;
