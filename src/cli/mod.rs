//! The client side of the `podstart` binary: Kubernetes manifests → requests
//! (`manifest`), registry credentials from Secrets and Docker config files
//! (`pull_secrets`), YAML documents (`yaml`), the subcommands (`commands`), and how their output looks
//! (`render`).
pub mod commands;
pub mod manifest;
pub mod pull_secrets;
pub mod render;
pub mod yaml;
