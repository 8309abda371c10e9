//! A small client of containerd's content service (containerd's own gRPC
//! API on the CRI socket, namespace `k8s.io`): committed blobs with their
//! labels, a blob's bytes, and the ingests in flight. Read-only; every call
//! has a short deadline, since progress is a nicety and must never hold a
//! pull up.
use std::time::Duration;

use tonic::{Code, Request, transport::Channel};

use containerd_client::services::v1 as pb;
use pb::content_client::ContentClient as RawClient;

/// containerd selects the namespace from this request header.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The namespace the CRI plugin keeps images in.
const CRI_NAMESPACE: &str = "k8s.io";
/// Deadline of each call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest blob `read` accepts (manifests are a few KiB).
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("containerd content service: {0}")]
    Call(#[from] tonic::Status),
    #[error("containerd content service: blob {digest} is larger than {MAX_READ_BYTES} bytes")]
    TooLarge { digest: String },
}

/// A committed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    /// Seconds since the epoch of the last change (creation or labels);
    /// zero or negative when containerd did not say.
    pub updated_unix: i64,
    pub labels: std::collections::HashMap<String, String>,
}

/// An ingest in flight.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// containerd's ref, `layer-sha256:<hex>` for a layer of a CRI pull.
    pub reference: String,
    pub offset: u64,
    pub total: u64,
}

#[derive(Clone)]
pub struct ContentClient {
    raw: RawClient<Channel>,
}

impl std::fmt::Debug for ContentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentClient").finish_non_exhaustive()
    }
}

fn request<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        NAMESPACE_HEADER,
        tonic::metadata::MetadataValue::from_static(CRI_NAMESPACE),
    );
    r.set_timeout(CALL_TIMEOUT);
    r
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl ContentClient {
    pub fn new(channel: Channel) -> ContentClient {
        ContentClient {
            raw: RawClient::new(channel),
        }
    }

    /// Blobs matching a containerd filter (e.g. `labels."key"`).
    pub async fn list(&self, filter: &str) -> Result<Vec<Blob>, ContentError> {
        let mut raw = self.raw.clone();
        let mut stream = tokio::time::timeout(
            CALL_TIMEOUT,
            raw.list(request(pb::ListContentRequest {
                filters: vec![filter.to_string()],
            })),
        )
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("list"))??
        .into_inner();
        let mut blobs = Vec::new();
        while let Some(page) = stream.message().await? {
            blobs.extend(page.info.into_iter().map(|i| {
                Blob {
                    digest: i.digest,
                    size: unsigned(i.size),
                    updated_unix: [i.created_at, i.updated_at]
                        .iter()
                        .flatten()
                        .map(|t| t.seconds)
                        .max()
                        .unwrap_or(0),
                    labels: i.labels,
                }
            }));
        }
        Ok(blobs)
    }

    /// The size of a committed blob; `None` when it is not (yet) stored.
    pub async fn size(&self, digest: &str) -> Result<Option<u64>, ContentError> {
        let mut raw = self.raw.clone();
        match raw
            .info(request(pb::InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info.map(|i| unsigned(i.size))),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    /// A whole (small) blob.
    pub async fn read(&self, digest: &str) -> Result<Vec<u8>, ContentError> {
        let mut raw = self.raw.clone();
        let mut stream = raw
            .read(request(pb::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
            if data.len() > MAX_READ_BYTES {
                return Err(ContentError::TooLarge {
                    digest: digest.to_string(),
                });
            }
        }
        Ok(data)
    }

    /// Every ingest in flight in the namespace.
    pub async fn ingests(&self) -> Result<Vec<Ingest>, ContentError> {
        let mut raw = self.raw.clone();
        let resp = raw
            .list_statuses(request(pb::ListStatusesRequest { filters: vec![] }))
            .await?
            .into_inner();
        Ok(resp
            .statuses
            .into_iter()
            .map(|s| Ingest {
                reference: s.r#ref,
                offset: unsigned(s.offset),
                total: unsigned(s.total),
            })
            .collect())
    }
}
