//! Pod volumes on the node (`PodSpec.volumes`): layout and disk work only,
//! no runtime calls. Each volume but a hostPath one is a directory
//! `<volume root>/<pod uid>/<volume name>` (`layout.rs`):
//!
//! - emptyDir: the directory (0777, as the kubelet's); medium Memory: a
//!   tmpfs mounted there, its size the size limit (`tmpfs.rs`); on disk,
//!   the size limit is checked against the directory's usage when the
//!   volume is set up (a warning, nothing enforced);
//! - config: the caller's files written the kubelet's AtomicWriter way
//!   (`atomic.rs`); a secret volume's directory is a tmpfs first;
//! - downwardAPI: files from the pod's fields (`downward.rs`), written the
//!   same way;
//! - hostPath: no directory of its own; its type checked or made
//!   (`host_path.rs`).
//!
//! [`set_up`] is idempotent (a re-run or a recovery reuses what is there;
//! a config volume without files whose data is in place is left as it is,
//! since the request a sandbox stores for recovery carries no config data);
//! [`tear_down`] unmounts and removes a pod's volumes; [`mount_sources`]
//! gives the host path each mount of a container binds.
pub mod atomic;
pub mod downward;
mod error;
pub mod host_path;
pub mod layout;
pub mod tmpfs;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

pub use downward::NodeAllocatable;
pub use error::VolumeError;

use crate::paths;
use crate::proto::v1::{Container, PodSpec, StorageMedium, Volume, volume::Source};

/// The mode of an emptyDir's directory (anyone in the pod may write).
const EMPTY_DIR_MODE: u32 = 0o777;
/// The mode of a config or downward API volume's directory.
const FILES_DIR_MODE: u32 = 0o755;
/// Files of config and downward API volumes without a mode.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// A volume that could not be set up (the kubelet's FailedMount message).
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
pub struct SetUpError {
    pub volume: String,
    #[source]
    pub source: VolumeError,
}

/// Something set-up found that does not stop the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub volume: String,
    pub message: String,
}

/// Sets up every volume of `pod`, in order; the first failure stops the
/// set-up (what was made stays for [`tear_down`]).
pub fn set_up(
    root: &Path,
    pod: &PodSpec,
    node: NodeAllocatable,
) -> Result<Vec<Warning>, SetUpError> {
    let uid = pod.metadata.as_ref().map_or("", |m| m.uid.as_str());
    let mut warnings = Vec::new();
    for v in &pod.volumes {
        set_up_one(root, uid, pod, v, node, &mut warnings).map_err(|source| SetUpError {
            volume: v.name.clone(),
            source,
        })?;
    }
    Ok(warnings)
}

fn set_up_one(
    root: &Path,
    uid: &str,
    pod: &PodSpec,
    v: &Volume,
    node: NodeAllocatable,
    warnings: &mut Vec<Warning>,
) -> Result<(), VolumeError> {
    let Some(source) = &v.source else {
        return Ok(());
    };
    if let Source::HostPath(h) = source {
        return host_path::check(&h.path, h.r#type());
    }
    let dir = paths::create_dirs(root, &[uid, &v.name])?;
    match source {
        Source::EmptyDir(e) => {
            set_mode(&dir, EMPTY_DIR_MODE)?;
            let limit = e.size_limit_bytes.filter(|l| *l > 0);
            if e.medium() == StorageMedium::Memory {
                tmpfs::mount(&dir, limit)?;
                set_mode(&dir, EMPTY_DIR_MODE)?;
            } else if let Some(limit) = limit {
                let used = layout::usage(&dir)?;
                if used > limit.unsigned_abs() {
                    warnings.push(Warning {
                        volume: v.name.clone(),
                        message: format!(
                            "Usage of EmptyDir volume {:?} exceeds the limit: {used} bytes used, \
                             {limit} allowed (not enforced on disk)",
                            v.name
                        ),
                    });
                }
            }
        }
        Source::Config(c) => {
            if c.secret {
                tmpfs::mount(&dir, None)?;
            }
            set_mode(&dir, FILES_DIR_MODE)?;
            // A request read back from the sandbox carries no config data:
            // what is in place stays.
            if c.files.is_empty() && fs::symlink_metadata(dir.join(atomic::DATA_LINK)).is_ok() {
                return Ok(());
            }
            let default = mode_or(c.default_mode, DEFAULT_FILE_MODE);
            let payload = c
                .files
                .iter()
                .map(|f| {
                    let content = atomic::FileContent {
                        data: f.data.clone(),
                        mode: mode_or(f.mode, default),
                    };
                    (f.path.clone(), content)
                })
                .collect();
            atomic::write(&dir, &payload)?;
        }
        Source::DownwardApi(d) => {
            set_mode(&dir, FILES_DIR_MODE)?;
            let default = mode_or(d.default_mode, DEFAULT_FILE_MODE);
            let mut payload = atomic::Payload::new();
            for f in &d.files {
                let source = f
                    .source
                    .as_ref()
                    .and_then(|s| s.source.as_ref())
                    .ok_or_else(|| VolumeError::Downward(format!("{}: no source", f.path)))?;
                let text = downward::content(pod, source, node)
                    .map_err(|e| VolumeError::Downward(format!("{}: {e}", f.path)))?;
                payload.insert(
                    f.path.clone(),
                    atomic::FileContent {
                        data: text.into_bytes(),
                        mode: mode_or(f.mode, default),
                    },
                );
            }
            atomic::write(&dir, &payload)?;
        }
        Source::HostPath(_) => {}
    }
    Ok(())
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o777)
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(VolumeError::io(dir))
}

/// What [`tear_down`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TornDown {
    /// The pod had a volume directory.
    pub existed: bool,
    /// Volumes removed.
    pub volumes: usize,
    /// What stayed: entries podstart did not make, mounts it could not
    /// undo, and what other file systems hold below a volume.
    pub kept: Vec<PathBuf>,
}

/// Unmounts and removes the volumes of the pod `uid`, then its directory
/// once empty. Only volume directories (plain names) are taken, each with
/// what it holds on its own file system; anything else stays.
pub fn tear_down(root: &Path, uid: &str) -> Result<TornDown, VolumeError> {
    let dir = layout::pod_dir(root, uid)?;
    let mut done = TornDown::default();
    let meta = match fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(VolumeError::io(&dir)(e)),
    };
    done.existed = true;
    paths::check_on_disk(root, &dir)?;
    if !meta.is_dir() {
        done.kept.push(dir);
        return Ok(done);
    }
    for entry in fs::read_dir(&dir).map_err(VolumeError::io(&dir))? {
        let entry = entry.map_err(VolumeError::io(&dir))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let plain = entry.file_name().to_str().is_some_and(paths::is_plain_name);
        if !is_dir || !plain {
            done.kept.push(path);
            continue;
        }
        if tmpfs::is_mount_point(&path)?
            && let Err(e) = tmpfs::unmount(&path)
        {
            tracing::warn!(error = %e, "unmounting a pod volume");
            done.kept.push(path);
            continue;
        }
        let kept = layout::remove_tree(&path)?;
        if kept.is_empty() {
            done.volumes += 1;
        }
        done.kept.extend(kept);
    }
    if done.kept.is_empty() {
        fs::remove_dir(&dir).map_err(VolumeError::io(&dir))?;
    }
    Ok(done)
}

/// The host path each of `c`'s mounts binds, in order: a mount's own
/// `host_path`, a hostPath volume's path, or the volume's directory; with
/// a subPath, the path inside it (made a directory when missing, never
/// leading out of the volume).
pub fn mount_sources(
    root: &Path,
    pod: &PodSpec,
    c: &Container,
) -> Result<Vec<String>, VolumeError> {
    let uid = pod.metadata.as_ref().map_or("", |m| m.uid.as_str());
    c.mounts
        .iter()
        .map(|m| {
            if m.volume_name.is_empty() {
                return Ok(m.host_path.clone());
            }
            let v = pod
                .volumes
                .iter()
                .find(|v| v.name == m.volume_name)
                .ok_or_else(|| VolumeError::Unknown(m.volume_name.clone()))?;
            let base = match &v.source {
                Some(Source::HostPath(h)) => PathBuf::from(&h.path),
                _ => layout::volume_dir(root, uid, &v.name)?,
            };
            let path = if m.sub_path.is_empty() {
                base
            } else {
                layout::resolve_sub_path(&base, &v.name, &m.sub_path)?
            };
            Ok(path.display().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests;
