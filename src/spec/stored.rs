//! The StartPodRequest a sandbox carries for recovery after a podstart
//! restart: the request as sent, encoded as protobuf and base64 in the
//! sandbox annotation [`POD_REQUEST`], with a hash of the encoding in
//! [`POD_SPEC_HASH`] so a damaged copy is refused rather than half read.
//!
//! Registry credentials are never stored: the copy is the request with
//! `credentials` emptied, so nothing secret reaches the runtime's metadata
//! (a restart after recovery pulls as an anonymous client would).
//! The pod's own annotations are left out of the copy too: the sandbox
//! carries them already, and they are put back when the copy is read.
//! So are the files of config volumes (ConfigMap and Secret data): they are
//! on the pod's volumes already, and a config volume without files whose
//! data is in place is left as it is (`volumes::set_up`); a recovered pod
//! whose volume is gone (a secret's tmpfs after a node reboot) finds it
//! empty until a StartPod with the data is sent again.
//!
//! The copy is bounded ([`STORED_REQUEST_MAX`]): every ListPodSandbox
//! answer carries the annotations of every sandbox it lists, within the
//! CRI client's 16 MiB message limit, while a request may be up to 4 MiB.
//! A pod whose copy would be larger is started all the same, without it;
//! recovery then leaves that pod alone, as it does sandboxes made before
//! podstart stored requests.
use std::collections::HashMap;

use base64::Engine;
use prost::Message;

use super::labels::fnv1a_32;
use crate::proto::v1::{StartPodRequest, volume};

/// Sandbox annotation: the pod's StartPodRequest, without credentials or
/// the pod's annotations, protobuf-encoded, base64 (standard alphabet).
pub const POD_REQUEST: &str = "io.podstart.pod.request";
/// Sandbox annotation: hex FNV-32a of the encoded request in [`POD_REQUEST`].
pub const POD_SPEC_HASH: &str = "io.podstart.pod.spec-hash";
/// Sandbox annotation: the podstart that started the pod, named by its pod
/// state root (`--pod-state-root`, which two podstarts cannot share).
/// Recovery takes up only its own pods: another podstart on the same
/// runtime (a test, a second instance) keeps its own.
pub const OWNER: &str = "io.podstart.owner";

/// Longest base64 text stored in [`POD_REQUEST`] (16 KiB): an ordinary pod
/// of a few containers takes about 1 KiB, so thousands of sandboxes list
/// within the CRI message limit; a node of a thousand pods at the bound
/// would reach it (see BENCHMARKS, "Recovery after a restart").
pub const STORED_REQUEST_MAX: usize = 16 * 1024;

/// Why a sandbox carries no usable request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredError {
    /// No [`POD_REQUEST`] annotation: made by a podstart that stored none,
    /// or for a pod whose request was too large to store.
    #[error("the sandbox carries no stored request")]
    Absent,
    /// The annotation is there but is not a request this podstart wrote.
    #[error("the sandbox's stored request is damaged: {0}")]
    Damaged(String),
}

/// The annotations that store `req` on its sandbox for the podstart named
/// `owner`, or `None` when the copy would be larger than
/// [`STORED_REQUEST_MAX`].
pub fn request_annotations(req: &StartPodRequest, owner: &str) -> Option<HashMap<String, String>> {
    let mut copy = StartPodRequest {
        pod: req.pod.clone(),
        // Credentials never leave the request: see the module comment.
        credentials: Vec::new(),
        options: req.options,
    };
    if let Some(meta) = copy.pod.as_mut().and_then(|p| p.metadata.as_mut()) {
        meta.annotations.clear();
    }
    // Config volume files (Secret data among them) stay on the node's
    // volumes only: see the module comment.
    for v in copy.pod.iter_mut().flat_map(|p| p.volumes.iter_mut()) {
        if let Some(volume::Source::Config(c)) = v.source.as_mut() {
            c.files.clear();
        }
    }
    let bytes = copy.encode_to_vec();
    if base64::encoded_len(bytes.len(), true).is_none_or(|n| n > STORED_REQUEST_MAX) {
        return None;
    }
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Some(HashMap::from([
        (POD_REQUEST.to_string(), text),
        (POD_SPEC_HASH.to_string(), format!("{:x}", fnv1a_32(&bytes))),
        (OWNER.to_string(), owner.to_string()),
    ]))
}

/// Takes podstart's stored-request keys out of a sandbox's annotations.
pub fn remove_from(ann: &mut HashMap<String, String>) {
    ann.remove(POD_REQUEST);
    ann.remove(POD_SPEC_HASH);
    ann.remove(OWNER);
}

/// The podstart a sandbox's pod was started by ([`OWNER`]), if recorded.
pub fn owner(ann: &HashMap<String, String>) -> Option<&str> {
    ann.get(OWNER).map(String::as_str)
}

/// The request stored in a sandbox's annotations, with the pod's
/// annotations (the sandbox's own, less podstart's keys) put back.
pub fn request_from_annotations(
    ann: &HashMap<String, String>,
) -> Result<StartPodRequest, StoredError> {
    let text = ann.get(POD_REQUEST).ok_or(StoredError::Absent)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| StoredError::Damaged(format!("not base64: {e}")))?;
    let want = ann.get(POD_SPEC_HASH).map(String::as_str).unwrap_or("");
    let got = format!("{:x}", fnv1a_32(&bytes));
    if want != got {
        return Err(StoredError::Damaged(format!(
            "hash {got} where the sandbox records {want:?}"
        )));
    }
    let mut req = StartPodRequest::decode(bytes.as_slice())
        .map_err(|e| StoredError::Damaged(format!("not a StartPodRequest: {e}")))?;
    req.credentials.clear();
    if let Some(meta) = req.pod.as_mut().and_then(|p| p.metadata.as_mut()) {
        meta.annotations = ann.clone();
        remove_from(&mut meta.annotations);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{
        AppStartMode, Container, PodMetadata, PodSpec, RegistryCredential, StartOptions,
    };

    fn request() -> StartPodRequest {
        StartPodRequest {
            pod: Some(PodSpec {
                metadata: Some(PodMetadata {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u1".into(),
                    annotations: HashMap::from([("team".to_string(), "a".to_string())]),
                    ..Default::default()
                }),
                containers: vec![Container {
                    name: "app".into(),
                    image: "busybox".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            credentials: vec![RegistryCredential {
                server: "registry.test".into(),
                username: "user".into(),
                password: "hunter2".into(),
                auth: "dXNlcjpodW50ZXIy".into(),
                ..Default::default()
            }],
            options: Some(StartOptions {
                app_start: AppStartMode::Parallel as i32,
                ..Default::default()
            }),
        }
    }

    /// The sandbox's annotations as the start flow writes them: the pod's,
    /// then the stored request.
    fn sandbox_annotations(req: &StartPodRequest) -> HashMap<String, String> {
        let mut ann = req
            .pod
            .as_ref()
            .and_then(|p| p.metadata.as_ref())
            .map(|m| m.annotations.clone())
            .unwrap_or_default();
        ann.extend(request_annotations(req, "/state").expect("small enough"));
        ann
    }

    #[test]
    fn a_request_round_trips_without_its_credentials() {
        let req = request();
        let ann = sandbox_annotations(&req);
        for v in ann.values() {
            assert!(!v.contains("hunter2") && !v.contains("dXNlcjpodW50ZXIy"));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&ann[POD_REQUEST])
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("hunter2"));
        assert_eq!(owner(&ann), Some("/state"));
        let back = request_from_annotations(&ann).unwrap();
        assert_eq!(
            back,
            StartPodRequest {
                credentials: Vec::new(),
                ..req
            }
        );
    }

    #[test]
    fn config_volume_data_is_not_stored() {
        use crate::proto::v1::{ConfigFile, ConfigVolume, Volume};
        let mut req = request();
        let config = ConfigVolume {
            files: vec![ConfigFile {
                path: "token".into(),
                data: b"s3cr3t-token".to_vec(),
                mode: None,
            }],
            default_mode: Some(0o400),
            secret: true,
        };
        req.pod.as_mut().unwrap().volumes = vec![Volume {
            name: "token".into(),
            source: Some(volume::Source::Config(config.clone())),
        }];
        let ann = sandbox_annotations(&req);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&ann[POD_REQUEST])
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("s3cr3t-token"));
        let back = request_from_annotations(&ann).unwrap();
        assert_eq!(
            back.pod.unwrap().volumes[0].source,
            Some(volume::Source::Config(ConfigVolume {
                files: Vec::new(),
                ..config
            }))
        );
    }

    #[test]
    fn damaged_or_missing_copies_are_refused() {
        let ann = sandbox_annotations(&request());
        assert_eq!(
            request_from_annotations(&HashMap::new()),
            Err(StoredError::Absent)
        );
        let mut bad_hash = ann.clone();
        bad_hash.insert(POD_SPEC_HASH.into(), "0".into());
        assert!(matches!(
            request_from_annotations(&bad_hash),
            Err(StoredError::Damaged(_))
        ));
        let mut cut = ann.clone();
        let text = cut[POD_REQUEST].clone();
        cut.insert(POD_REQUEST.into(), text[..text.len() / 2].to_string());
        assert!(matches!(
            request_from_annotations(&cut),
            Err(StoredError::Damaged(_))
        ));
    }

    #[test]
    fn a_request_above_the_bound_is_not_stored() {
        let mut req = request();
        let pod = req.pod.as_mut().unwrap();
        pod.containers[0].args = vec!["x".repeat(STORED_REQUEST_MAX)];
        assert_eq!(request_annotations(&req, "/state"), None);
        // The pod's annotations do not count: the sandbox has them anyway.
        let mut req = request();
        let meta = req.pod.as_mut().unwrap().metadata.as_mut().unwrap();
        meta.annotations
            .insert("big".into(), "y".repeat(2 * STORED_REQUEST_MAX));
        assert!(request_annotations(&req, "/state").is_some());
    }
}
