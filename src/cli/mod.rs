//! The client side of the `podstart` binary: Kubernetes manifests → requests
//! (`manifest`), the subcommands (`commands`), and how their output looks
//! (`render`).
pub mod commands;
pub mod manifest;
pub mod quantity;
pub mod render;
