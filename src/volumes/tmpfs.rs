//! tmpfs mounts for Memory emptyDirs and secret config volumes, made with
//! the `mount` and `umount` commands as the kubelet makes them
//! (`mount -t tmpfs -o size=N tmpfs DIR`). A directory is a mount point
//! when it is on another device than its parent.
use std::{os::unix::fs::MetadataExt, path::Path, process::Command};

use super::error::VolumeError;

/// Whether `dir` is a mount point (its device differs from its parent's).
pub fn is_mount_point(dir: &Path) -> Result<bool, VolumeError> {
    let meta = std::fs::symlink_metadata(dir).map_err(VolumeError::io(dir))?;
    let parent = dir.parent().unwrap_or(dir);
    let up = std::fs::metadata(parent).map_err(VolumeError::io(parent))?;
    Ok(meta.dev() != up.dev())
}

/// Mounts a tmpfs of `size_bytes` (none: tmpfs's default, half the
/// node's memory) at `dir`, unless something is mounted there already.
pub fn mount(dir: &Path, size_bytes: Option<i64>) -> Result<(), VolumeError> {
    if is_mount_point(dir)? {
        return Ok(());
    }
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "tmpfs"]);
    if let Some(size) = size_bytes.filter(|s| *s > 0) {
        cmd.args(["-o", &format!("size={size}")]);
    }
    cmd.arg("tmpfs").arg(dir);
    run(cmd, "mount", dir)
}

/// Unmounts `dir`.
pub fn unmount(dir: &Path) -> Result<(), VolumeError> {
    let mut cmd = Command::new("umount");
    cmd.arg(dir);
    run(cmd, "umount", dir)
}

fn run(mut cmd: Command, command: &'static str, dir: &Path) -> Result<(), VolumeError> {
    let failed = |detail: String| VolumeError::Mount {
        command,
        path: dir.to_path_buf(),
        detail,
    };
    let out = cmd.output().map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(failed(format!("{}: {}", out.status, stderr.trim())))
}
