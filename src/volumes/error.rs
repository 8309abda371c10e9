//! Every way setting up, resolving or removing a pod volume can fail.
use std::{io, path::PathBuf};

use crate::paths::PathError;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A path under the volume root could not be made or checked.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A host path is not of the type its volume asks for (the kubelet's
    /// words).
    #[error("hostPath type check failed: {path} {what}")]
    HostPathType { path: String, what: &'static str },
    /// `mount` or `umount` failed.
    #[error("{command} {}: {detail}", path.display())]
    Mount {
        command: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// A subPath leads out of its volume (through a symbolic link), or
    /// through something that is not a directory.
    #[error("subPath {sub_path:?} of volume {volume:?}: {rule}")]
    SubPath {
        volume: String,
        sub_path: String,
        rule: String,
    },
    /// A downward API file names something the pod does not have.
    #[error("{0}")]
    Downward(String),
    /// A mount names a volume the pod does not declare (validation refuses
    /// such requests first).
    #[error("volume {0:?} is not declared by the pod")]
    Unknown(String),
}

impl VolumeError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
        move |source| VolumeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
