//! How far a pull in flight has come. The CRI has no progress RPC, so when
//! the runtime is containerd the figures come from its content service: the
//! pull's manifest is found by its labels
//! (`containerd.io/distribution.source.<host>` naming the repository, and
//! `containerd.io/gc.ref.content.l.<n>` naming layers), its layer list gives
//! the totals, and each layer is either stored (done), an ingest
//! `layer-sha256:<hex>` (its offset so far) or not begun. Other runtimes
//! get a heartbeat: elapsed time only.
//!
//! Also the stall rule: measured progress that does not move for a set time.
//! Sampling never fails a pull: a content-service error reads as "unknown".
use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use tokio::time::Instant;

use super::content::{Blob, ContentClient};
use crate::spec::image::ImageRef;

const SOURCE_LABEL: &str = "containerd.io/distribution.source.";
const LAYER_LABEL: &str = "containerd.io/gc.ref.content.l.";
/// Slack when comparing containerd's timestamps with our start time.
const CLOCK_SLACK_SECS: i64 = 2;

/// One reading of a pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub layers_done: u32,
    pub layers_total: u32,
    /// False for a heartbeat: nothing is measured.
    pub measured: bool,
}

impl Progress {
    fn complete(&self) -> bool {
        self.layers_total > 0 && self.layers_done == self.layers_total
    }
}

/// Manifests claimed by pulls in flight, so two pulls of one repository do
/// not read the same manifest.
pub type Claims = Arc<Mutex<HashSet<String>>>;

/// Where readings come from, chosen once per node.
#[derive(Debug, Clone)]
pub enum Probe {
    Containerd(ContentClient),
    Heartbeat,
}

impl Probe {
    pub fn watch(&self, image: &ImageRef, claims: Claims) -> PullWatch {
        PullWatch {
            probe: self.clone(),
            host: image.registry_host().to_string(),
            repository: image.repository.clone(),
            since_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
            manifest: None,
            stored: HashSet::new(),
            claims,
            last: Progress::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ManifestJson {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
}

struct Manifest {
    digest: String,
    layers: Vec<Descriptor>,
}

/// Follows one pull.
pub struct PullWatch {
    probe: Probe,
    host: String,
    repository: String,
    since_unix: i64,
    manifest: Option<Manifest>,
    /// Layers known to be stored.
    stored: HashSet<String>,
    claims: Claims,
    /// The last good reading, repeated when a reading fails.
    last: Progress,
}

impl std::fmt::Debug for PullWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullWatch")
            .field("probe", &self.probe)
            .field("host", &self.host)
            .field("repository", &self.repository)
            .field("since_unix", &self.since_unix)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Drop for PullWatch {
    fn drop(&mut self) {
        if let Some(m) = &self.manifest {
            self.claims
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&m.digest);
        }
    }
}

impl PullWatch {
    pub async fn sample(&mut self) -> Progress {
        let Probe::Containerd(client) = self.probe.clone() else {
            return Progress::default();
        };
        match self.measure(&client).await {
            Ok(p) => {
                self.last = p.clone();
                p
            }
            Err(e) => {
                tracing::debug!(error = %e, "pull progress unavailable");
                Progress {
                    measured: true,
                    ..self.last.clone()
                }
            }
        }
    }

    async fn measure(
        &mut self,
        client: &ContentClient,
    ) -> Result<Progress, super::content::ContentError> {
        if self.manifest.is_none() {
            self.manifest = self.find_manifest(client).await?;
        }
        let Some(manifest) = &self.manifest else {
            return Ok(Progress {
                measured: true,
                ..Progress::default()
            });
        };
        let ingests = client.ingests().await?;
        let mut p = Progress {
            measured: true,
            layers_total: u32::try_from(manifest.layers.len()).unwrap_or(u32::MAX),
            ..Progress::default()
        };
        let mut newly_stored = Vec::new();
        for layer in &manifest.layers {
            p.bytes_total += layer.size;
            if self.stored.contains(&layer.digest) {
                p.bytes_done += layer.size;
                p.layers_done += 1;
                continue;
            }
            let hex = layer.digest.trim_start_matches("sha256:");
            let ingest = ingests
                .iter()
                .find(|i| i.reference.ends_with(hex) && i.reference.starts_with("layer-"));
            if let Some(i) = ingest {
                p.bytes_done += i.offset.min(layer.size);
            } else if client.size(&layer.digest).await?.is_some() {
                newly_stored.push(layer.digest.clone());
                p.bytes_done += layer.size;
                p.layers_done += 1;
            }
        }
        self.stored.extend(newly_stored);
        Ok(p)
    }

    /// The newest unclaimed image manifest of our repository written since
    /// the pull began.
    async fn find_manifest(
        &self,
        client: &ContentClient,
    ) -> Result<Option<Manifest>, super::content::ContentError> {
        let key = format!("{SOURCE_LABEL}{}", self.host);
        let blobs = client.list(&format!("labels.\"{key}\"")).await?;
        let mut candidates: Vec<&Blob> = blobs
            .iter()
            .filter(|b| {
                b.labels
                    .get(&key)
                    .is_some_and(|v| v.split(',').any(|r| r == self.repository))
                    && b.labels.keys().any(|k| k.starts_with(LAYER_LABEL))
                    // containerd 1.6 may leave the times unset (zero or
                    // Go's zero time): only a set time can rule a blob out.
                    && (b.updated_unix <= 0 || b.updated_unix >= self.since_unix - CLOCK_SLACK_SECS)
            })
            .collect();
        candidates.sort_by_key(|b| std::cmp::Reverse(b.updated_unix));
        for blob in candidates {
            {
                let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
                if !claims.insert(blob.digest.clone()) {
                    continue;
                }
            }
            let bytes = client.read(&blob.digest).await?;
            match serde_json::from_slice::<ManifestJson>(&bytes) {
                Ok(m) if !m.layers.is_empty() => {
                    return Ok(Some(Manifest {
                        digest: blob.digest.clone(),
                        layers: m.layers,
                    }));
                }
                _ => {
                    self.claims
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&blob.digest);
                }
            }
        }
        Ok(None)
    }
}

/// Decides when measured progress has stood still for too long.
#[derive(Debug)]
pub struct StallDetector {
    timeout: Duration,
    last: Option<Progress>,
    last_change: Instant,
}

impl StallDetector {
    /// `timeout` zero: never stalls.
    pub fn new(timeout: Duration, now: Instant) -> StallDetector {
        StallDetector {
            timeout,
            last: None,
            last_change: now,
        }
    }

    /// Records a reading; returns how long progress has stood still when
    /// that is too long. Heartbeats (nothing measured) and a pull whose
    /// layers are all stored (containerd is unpacking) never stall.
    pub fn observe(&mut self, p: &Progress, now: Instant) -> Option<Duration> {
        if self.timeout.is_zero() || !p.measured || p.complete() {
            self.last_change = now;
            self.last = Some(p.clone());
            return None;
        }
        if self.last.as_ref() != Some(p) {
            self.last = Some(p.clone());
            self.last_change = now;
            return None;
        }
        let still = now.saturating_duration_since(self.last_change);
        (still >= self.timeout).then_some(still)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bytes: u64, layers: u32) -> Progress {
        Progress {
            bytes_done: bytes,
            bytes_total: 100,
            layers_done: layers,
            layers_total: 3,
            measured: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stalls_only_when_measured_progress_stands_still() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = StallDetector::new(s(10), t0);
        assert_eq!(d.observe(&at(0, 0), t0), None);
        assert_eq!(d.observe(&at(5, 0), t0 + s(5)), None);
        assert_eq!(d.observe(&at(5, 0), t0 + s(14)), None);
        assert_eq!(d.observe(&at(5, 0), t0 + s(15)), Some(s(10)));
        // Moving again resets it.
        assert_eq!(d.observe(&at(6, 0), t0 + s(16)), None);
        // Heartbeats and complete pulls never stall.
        let mut hb = StallDetector::new(s(1), t0);
        assert_eq!(hb.observe(&Progress::default(), t0 + s(100)), None);
        assert_eq!(hb.observe(&Progress::default(), t0 + s(200)), None);
        let mut done = StallDetector::new(s(1), t0);
        assert_eq!(done.observe(&at(100, 3), t0), None);
        assert_eq!(done.observe(&at(100, 3), t0 + s(60)), None);
        // Zero disables the rule.
        let mut off = StallDetector::new(Duration::ZERO, t0);
        assert_eq!(off.observe(&at(1, 0), t0), None);
        assert_eq!(off.observe(&at(1, 0), t0 + s(1000)), None);
    }
}
