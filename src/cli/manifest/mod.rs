//! Kubernetes Pod manifests: reads a `v1/Pod` (YAML or JSON, possibly
//! multi-document, possibly from several files) with the ConfigMaps and
//! Secrets beside it into podstart's own [`StartPodRequest`].
//!
//! The conversion is strict about meaning and lax about validity:
//! - every field podstart can represent is converted;
//! - fields that only concern scheduling or the API server are ignored with a
//!   warning naming the field;
//! - every other field, anywhere, is an error naming its full path
//!   (`spec.volumes[1].csi: not supported`), so nothing that changes
//!   behaviour is dropped silently; all such errors are collected and
//!   reported together, one per line;
//! - names, DNS rules, duplicates and path rules are not checked here: the
//!   service validates every request in one place.
//!
//! Like the API server, the conversion applies Kubernetes defaults where the
//! request would otherwise mean something else: a resource request defaults
//! to its limit, and unset startup-probe timings take Kubernetes' values.
//!
//! This module reads the documents and holds the entry points and the error
//! type; the conversion is split by concern: ConfigMap and Secret documents
//! (`config`), the pod (`pod`), containers
//! (`container`), volumes and mounts (`volumes`), environment (`env`),
//! security contexts (`security`), probes and lifecycle hooks (`probes`) and
//! resources (`resources`), over a field walker that names paths (`fields`).

mod config;
mod container;
mod downward;
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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cli::yaml::{self, Value};
use crate::proto::v1::StartPodRequest;
use config::ConfigDocument;
pub use fields::FieldError;
use fields::{Errors, describe, field_error};

/// State of one conversion: the warnings and field errors so far, the
/// ConfigMaps and Secrets of the manifest, and the pod's volumes.
#[derive(Debug, Default)]
struct Converter {
    warnings: Vec<String>,
    errors: Errors,
    /// ConfigMap and Secret documents, in document order.
    configs: Vec<ConfigDocument>,
    /// The pod's namespace, once its metadata is read.
    namespace: String,
    /// The pod's metadata, once read.
    metadata: Option<crate::proto::v1::PodMetadata>,
    /// The names of the pod's volumes.
    volumes: BTreeSet<String>,
    /// imagePullSecrets: (path, Secret name).
    pull_secrets: Vec<(String, String)>,
}

impl Converter {
    fn warn(&mut self, path: String, why: impl std::fmt::Display) {
        self.warnings.push(format!("{path}: {why}"));
    }

    fn error(&self, path: impl Into<String>, rule: impl Into<String>) {
        self.errors.borrow_mut().push(FieldError {
            path: path.into(),
            rule: rule.into(),
        });
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

/// Every field error of a manifest, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
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
    /// A document of a kind other than Pod, ConfigMap or Secret.
    #[error(
        "unexpected kind {kind:?}: a manifest holds one Pod and, optionally, ConfigMaps and \
         Secrets"
    )]
    UnexpectedKind { kind: String },
    /// Fields podstart cannot represent, or values of the wrong shape: all
    /// of them, one per line (`path: rule`).
    #[error("{0}")]
    Fields(FieldErrors),
    /// A Secret named by imagePullSecrets holds no usable credentials.
    #[error(transparent)]
    PullSecret(#[from] crate::cli::pull_secrets::PullSecretError),
}

type Result<T, E = ManifestError> = std::result::Result<T, E>;

/// Reads and converts the manifest at `path`.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    load_manifests(&[path.to_path_buf()])
}

/// Reads the documents of every file in `paths` and converts them together,
/// as `kubectl apply -f a -f b` takes them: one Pod among them all.
pub fn load_manifests(paths: &[PathBuf]) -> Result<Manifest> {
    let mut documents = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.clone(),
            source,
        })?;
        documents.extend(yaml::documents(&text)?);
    }
    convert_documents(documents)
}

/// Converts a manifest: YAML or JSON, one or more documents, exactly one of
/// kind Pod. ConfigMap and Secret documents are the data the pod's volumes
/// and environment read; Secrets named by the pod's imagePullSecrets also
/// become the request's credentials; any other kind is an error.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    convert_documents(yaml::documents(text)?)
}

fn convert_documents(documents: Vec<Value>) -> Result<Manifest> {
    let mut pod = None;
    let mut secrets = Vec::new();
    let mut converter = Converter::default();
    // Empty documents are left out, so `number` counts the others.
    for (index, value) in documents.into_iter().enumerate() {
        match document_kind(&value, index + 1)?.as_deref() {
            None => {}
            Some(kind @ ("Secret" | "ConfigMap")) => {
                if kind == "Secret" {
                    secrets.push(value.clone());
                }
                converter.config_document(value, index + 1);
            }
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
    let mut manifest = converter.pod(pod);
    let errors = std::mem::take(&mut *converter.errors.borrow_mut());
    if !errors.is_empty() {
        return Err(ManifestError::Fields(FieldErrors(errors)));
    }
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
