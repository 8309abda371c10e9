//! Where a pod's volumes live: `<volume root>/<pod uid>/<volume name>`,
//! every path made through `paths::under`; the disk usage of a volume; a
//! subPath resolved inside its volume; and the removal of a volume's
//! contents.
//!
//! A volume's contents are the pod's (what its containers wrote, or the
//! files podstart wrote for it): they go with the pod whatever they are,
//! as the kubelet's `RemoveAllOneFilesystem` removes them — entry by entry,
//! never following a symbolic link (the link itself goes), never crossing
//! into another file system (what is mounted below stays, and so do the
//! directories holding it).
use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use super::error::VolumeError;
use crate::paths::{self, PathError};

/// The directory of the pod's volumes.
pub fn pod_dir(root: &Path, uid: &str) -> Result<PathBuf, PathError> {
    paths::under(root, &[uid])
}

/// The directory of one volume of the pod.
pub fn volume_dir(root: &Path, uid: &str, name: &str) -> Result<PathBuf, PathError> {
    paths::under(root, &[uid, name])
}

/// Bytes the files under `dir` take on its file system (blocks, as `du`),
/// without following links or crossing into other file systems.
pub fn usage(dir: &Path) -> Result<u64, VolumeError> {
    let meta = fs::symlink_metadata(dir).map_err(VolumeError::io(dir))?;
    let mut total = 0;
    add_usage(dir, meta.dev(), &mut total)?;
    Ok(total)
}

fn add_usage(dir: &Path, dev: u64, total: &mut u64) -> Result<(), VolumeError> {
    for entry in fs::read_dir(dir).map_err(VolumeError::io(dir))? {
        let entry = entry.map_err(VolumeError::io(dir))?;
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(VolumeError::io(&path)(e)),
        };
        if meta.dev() != dev {
            continue;
        }
        *total += meta.blocks() * 512;
        if meta.is_dir() {
            add_usage(&path, dev, total)?;
        }
    }
    Ok(())
}

/// Removes `dir` and what it holds on its own file system; returns what
/// stayed (entries on other file systems, and the directories above them).
pub fn remove_tree(dir: &Path) -> Result<Vec<PathBuf>, VolumeError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(VolumeError::io(dir)(e)),
    };
    let mut kept = Vec::new();
    if !meta.is_dir() {
        fs::remove_file(dir).map_err(VolumeError::io(dir))?;
        return Ok(kept);
    }
    remove_below(dir, meta.dev(), &mut kept)?;
    if kept.is_empty() {
        fs::remove_dir(dir).map_err(VolumeError::io(dir))?;
    }
    Ok(kept)
}

fn remove_below(dir: &Path, dev: u64, kept: &mut Vec<PathBuf>) -> Result<(), VolumeError> {
    // A directory a container made read-only still empties.
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.permissions().mode() & 0o700 != 0o700
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    for entry in fs::read_dir(dir).map_err(VolumeError::io(dir))? {
        let entry = entry.map_err(VolumeError::io(dir))?;
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(VolumeError::io(&path)(e)),
        };
        if meta.dev() != dev {
            kept.push(path);
            continue;
        }
        if meta.is_dir() {
            let before = kept.len();
            remove_below(&path, dev, kept)?;
            if kept.len() == before {
                fs::remove_dir(&path).map_err(VolumeError::io(&path))?;
            }
        } else {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(VolumeError::io(&path)(e)),
            }
        }
    }
    Ok(())
}

/// The host path of `sub_path` inside the volume directory `base`, made a
/// directory (with the volume's mode) where it is missing, as the kubelet
/// does. Symbolic links on the way are followed only while they stay
/// inside the volume; one that leads out is refused (the kubelet's subpath
/// safety). The result has its links resolved: what was checked is what is
/// mounted.
pub fn resolve_sub_path(base: &Path, volume: &str, sub_path: &str) -> Result<PathBuf, VolumeError> {
    let refuse = |rule: String| VolumeError::SubPath {
        volume: volume.to_string(),
        sub_path: sub_path.to_string(),
        rule,
    };
    let real_base = fs::canonicalize(base).map_err(VolumeError::io(base))?;
    let mode = fs::metadata(&real_base)
        .map_err(VolumeError::io(&real_base))?
        .permissions()
        .mode()
        & 0o7777;
    let parts: Vec<_> = Path::new(sub_path).components().collect();
    let mut at = real_base.clone();
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return Err(refuse("must be a relative path without \"..\"".into()));
        };
        let next = at.join(name);
        match fs::symlink_metadata(&next) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::DirBuilder::new().mode(mode).create(&next) {
                    Ok(()) => {
                        // The mode as given, whatever the umask.
                        fs::set_permissions(&next, fs::Permissions::from_mode(mode))
                            .map_err(VolumeError::io(&next))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(VolumeError::io(&next)(e)),
                }
                at = next;
                continue;
            }
            Err(e) => return Err(VolumeError::io(&next)(e)),
            Ok(_) => {}
        }
        let real = fs::canonicalize(&next).map_err(VolumeError::io(&next))?;
        if !real.starts_with(&real_base) {
            return Err(refuse(format!(
                "{} leads to {}, outside the volume",
                next.display(),
                real.display()
            )));
        }
        let last = i + 1 == parts.len();
        if !last && !real.is_dir() {
            return Err(refuse(format!("{} is not a directory", next.display())));
        }
        at = real;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn sub_paths_stay_inside_their_volume() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&vol).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o777)).unwrap();
        let made = resolve_sub_path(&vol, "v", "a/b").unwrap();
        assert_eq!(made, fs::canonicalize(&vol).unwrap().join("a/b"));
        assert!(made.is_dir());
        assert_eq!(
            fs::metadata(&made).unwrap().permissions().mode() & 0o777,
            0o777
        );
        // A link inside the volume is followed.
        symlink("a", vol.join("alias")).unwrap();
        assert_eq!(resolve_sub_path(&vol, "v", "alias/b").unwrap(), made);
        // One that leads out is refused, and nothing is made outside.
        symlink(&outside, vol.join("out")).unwrap();
        let err = resolve_sub_path(&vol, "v", "out/x").unwrap_err();
        assert!(err.to_string().contains("outside the volume"), "{err}");
        assert!(!outside.join("x").exists());
        symlink("../outside", vol.join("up")).unwrap();
        assert!(resolve_sub_path(&vol, "v", "up").is_err());
        // A file may be the last part, not one on the way.
        fs::write(vol.join("f"), "x").unwrap();
        assert!(resolve_sub_path(&vol, "v", "f").is_ok());
        assert!(resolve_sub_path(&vol, "v", "f/g").is_err());
        assert!(resolve_sub_path(&vol, "v", "../x").is_err());
    }

    #[test]
    fn removal_takes_everything_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        let outside = dir.path().join("outside");
        fs::create_dir_all(vol.join("a/b")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        fs::write(vol.join("a/b/f"), vec![0u8; 10_000]).unwrap();
        symlink(&outside, vol.join("link")).unwrap();
        fs::set_permissions(vol.join("a"), fs::Permissions::from_mode(0o500)).unwrap();
        assert!(usage(&vol).unwrap() >= 10_000);
        assert_eq!(remove_tree(&vol).unwrap(), Vec::<PathBuf>::new());
        assert!(!vol.exists());
        assert!(outside.join("keep").exists(), "a link is not followed");
        assert_eq!(remove_tree(&vol).unwrap(), Vec::<PathBuf>::new());
    }
}
