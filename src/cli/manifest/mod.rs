//! Kubernetes Pod manifests: reads a `v1/Pod` (YAML or JSON, possibly
//! multi-document) into podstart's own [`StartPodRequest`].
//!
//! The conversion is strict about meaning and lax about validity:
//! - every field podstart can represent is converted;
//! - fields that only concern scheduling or the API server are ignored with a
//!   warning naming the field;
//! - every other field, anywhere, is an error naming its full path
//!   (`spec.containers[1].envFrom: not supported`), so nothing that changes
//!   behaviour is dropped silently;
//! - names, DNS rules, duplicates and path rules are not checked here: the
//!   service validates every request in one place.
//!
//! Like the API server, the conversion applies Kubernetes defaults where the
//! request would otherwise mean something else: a resource request defaults
//! to its limit, and unset startup-probe timings take Kubernetes' values.
//!
//! This module reads the documents and holds the entry points and the error
//! type; the conversion is split by concern: the pod (`pod`), containers
//! (`container`), volumes and mounts (`volumes`), environment (`env`),
//! security contexts (`security`), probes and lifecycle hooks (`probes`) and
//! resources (`resources`), over a field walker that names paths (`fields`).

mod container;
mod env;
mod fields;
mod pod;
mod probes;
mod resources;
mod security;
mod volumes;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::cli::yaml::{self, Value};
use crate::proto::v1::StartPodRequest;
use fields::{describe, field_error};
use volumes::Volume;

/// State of one conversion: the warnings so far and the pod's volumes.
#[derive(Debug, Default)]
struct Converter {
    warnings: Vec<String>,
    volumes: BTreeMap<String, Volume>,
    mounted: BTreeSet<String>,
    /// imagePullSecrets: (path, Secret name).
    pull_secrets: Vec<(String, String)>,
}

impl Converter {
    fn warn(&mut self, path: String, why: impl std::fmt::Display) {
        self.warnings.push(format!("{path}: {why}"));
    }
}

/// A converted manifest: the request to send, and what was ignored on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The pod as podstart's API spells it; credentials and options are left
    /// for the caller to fill in.
    pub request: StartPodRequest,
    /// One line per ignored field: `"{path}: {why}"`.
    pub warnings: Vec<String>,
}

/// Why a manifest cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not well-formed YAML or JSON; the message carries the line
    /// and column.
    #[error("malformed manifest: {0}")]
    Yaml(#[from] crate::cli::yaml::Error),
    /// No document of kind Pod.
    #[error("no Pod in the manifest: exactly one document of kind Pod is required")]
    NoPod,
    /// More than one document of kind Pod.
    #[error("more than one Pod in the manifest: exactly one document of kind Pod is required")]
    MultiplePods,
    /// A document of a kind other than Pod or Secret.
    #[error("unexpected kind {kind:?}: a manifest holds one Pod and, optionally, Secrets")]
    UnexpectedKind { kind: String },
    /// A field podstart cannot represent, or a value of the wrong shape.
    #[error("{path}: {rule}")]
    Field { path: String, rule: String },
    /// A Secret named by imagePullSecrets holds no usable credentials.
    #[error(transparent)]
    PullSecret(#[from] crate::cli::pull_secrets::PullSecretError),
}

type Result<T, E = ManifestError> = std::result::Result<T, E>;

/// Reads and converts the manifest at `path`.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_manifest(&text)
}

/// Converts a manifest: YAML or JSON, one or more documents, exactly one of
/// kind Pod. Secret documents named by the pod's imagePullSecrets become the
/// request's credentials; any other kind is an error.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    let mut pod = None;
    let mut secrets = Vec::new();
    // Empty documents are left out, so `number` counts the others.
    for (index, value) in yaml::documents(text)?.into_iter().enumerate() {
        match document_kind(&value, index + 1)?.as_deref() {
            None => {}
            Some("Secret") => secrets.push(value),
            Some("Pod") if pod.is_some() => return Err(ManifestError::MultiplePods),
            Some("Pod") => pod = Some(value),
            Some(kind) => {
                return Err(ManifestError::UnexpectedKind {
                    kind: kind.to_owned(),
                });
            }
        }
    }
    let pod = pod.ok_or(ManifestError::NoPod)?;
    let mut converter = Converter::default();
    let mut manifest = converter.pod(pod)?;
    for (path, name) in std::mem::take(&mut converter.pull_secrets) {
        match secrets
            .iter()
            .find(|s| crate::cli::pull_secrets::secret_name(s).as_deref() == Some(name.as_str()))
        {
            Some(secret) => manifest
                .request
                .credentials
                .extend(crate::cli::pull_secrets::from_secret(secret)?),
            None => manifest.warnings.push(format!(
                "{path}: Secret {name:?} is not in the manifest; ignored"
            )),
        }
    }
    Ok(manifest)
}

/// The `kind` of one document; `None` for an empty document.
fn document_kind(document: &Value, number: usize) -> Result<Option<String>> {
    match document {
        Value::Null => return Ok(None),
        Value::Mapping(_) => {}
        other => {
            return Err(field_error(
                format!("document {number}"),
                format!(
                    "expected a Kubernetes object (a mapping), found {}",
                    describe(other)
                ),
            ));
        }
    };
    match document.get("kind") {
        Some(Value::String(kind)) => Ok(Some(kind.clone())),
        None | Some(Value::Null) => {
            Err(field_error("kind", format!("missing in document {number}")))
        }
        Some(other) => Err(field_error(
            "kind",
            format!(
                "expected a string, found {} (document {number})",
                describe(other)
            ),
        )),
    }
}
