//! Images on the node: the kubelet's keyring order for credentials
//! (`keyring.rs`), per-(pod, image) pull back-off (`backoff.rs`), the
//! node-wide puller with its parallel limit and single-flight
//! (`puller.rs`), live pull progress from containerd's content service
//! (`progress.rs`, `content.rs`) and what a failed pull is called
//! (`failure.rs`). The start flow (`start::image`) turns these into events;
//! nothing here emits events or decides pull policy.
pub mod backoff;
mod content;
pub mod failure;
pub mod keyring;
pub mod progress;
pub mod puller;

pub use backoff::PullBackoff;
pub use failure::{PullError, PullFailureKind};
pub use progress::Progress;
pub use puller::{FlightState, PullSpec, Pulled, Puller, PullerConfig, Ticket};
