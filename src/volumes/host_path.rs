//! hostPath volume type checks, as the kubelet's `checkType`: the
//! `…OrCreate` types make what is missing (a directory 0755 with its
//! parents; a file 0644, never its directory), the others check what is
//! there, with the kubelet's messages.
use std::{
    fs,
    os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt},
    path::Path,
};

use super::error::VolumeError;
use crate::proto::v1::HostPathType;

/// Checks (or makes) `path` as `kind` asks.
pub fn check(path: &str, kind: HostPathType) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let meta = fs::metadata(p).ok();
    let refuse = |what| {
        Err(VolumeError::HostPathType {
            path: path.to_string(),
            what,
        })
    };
    match kind {
        HostPathType::Unspecified => Ok(()),
        HostPathType::DirectoryOrCreate if meta.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(p)
            .map_err(VolumeError::io(p)),
        HostPathType::FileOrCreate if meta.is_none() => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(p)
            .map(drop)
            .map_err(VolumeError::io(p)),
        HostPathType::Directory | HostPathType::DirectoryOrCreate => match meta {
            None => refuse("does not exist"),
            Some(m) if !m.is_dir() => refuse("is not a directory"),
            Some(_) => Ok(()),
        },
        HostPathType::File | HostPathType::FileOrCreate => match meta {
            None => refuse("does not exist"),
            Some(m) if !m.is_file() => refuse("is not a file"),
            Some(_) => Ok(()),
        },
        HostPathType::Socket => match meta {
            Some(m) if m.file_type().is_socket() => Ok(()),
            _ => refuse("is not a socket file"),
        },
        HostPathType::CharDevice => match meta {
            Some(m) if m.file_type().is_char_device() => Ok(()),
            _ => refuse("is not a character device"),
        },
        HostPathType::BlockDevice => match meta {
            Some(m) if m.file_type().is_block_device() => Ok(()),
            _ => refuse("is not a block device"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn types_are_checked_or_made() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("file"), "x").unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let s = |p: &str| d.join(p).display().to_string();
        let ok = [
            (s("file"), HostPathType::File),
            (s("file"), HostPathType::FileOrCreate),
            (s("file"), HostPathType::Unspecified),
            (s("nothing"), HostPathType::Unspecified),
            (s(""), HostPathType::Directory),
            (s("sock"), HostPathType::Socket),
            ("/dev/null".to_string(), HostPathType::CharDevice),
        ];
        for (path, kind) in ok {
            check(&path, kind).unwrap_or_else(|e| panic!("{path} {kind:?}: {e}"));
        }
        let refused = [
            (s("file"), HostPathType::Directory, "is not a directory"),
            (
                s("file"),
                HostPathType::DirectoryOrCreate,
                "is not a directory",
            ),
            (s(""), HostPathType::File, "is not a file"),
            (s("nothing"), HostPathType::Directory, "does not exist"),
            (s("nothing"), HostPathType::File, "does not exist"),
            (s("file"), HostPathType::Socket, "is not a socket file"),
            (
                s("file"),
                HostPathType::CharDevice,
                "is not a character device",
            ),
            (
                "/dev/null".to_string(),
                HostPathType::BlockDevice,
                "is not a block device",
            ),
        ];
        for (path, kind, what) in refused {
            let err = check(&path, kind).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("hostPath type check failed: {path} {what}"),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn or_create_makes_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        check(deep.to_str().unwrap(), HostPathType::DirectoryOrCreate).unwrap();
        let mode = fs::metadata(&deep).unwrap().permissions().mode() & 0o777;
        assert!(deep.is_dir());
        assert_eq!(mode & !0o022, 0o755 & !0o022, "0755 less the umask");
        let file = dir.path().join("a/f");
        check(file.to_str().unwrap(), HostPathType::FileOrCreate).unwrap();
        assert!(file.is_file());
        // Not its directory.
        let orphan = dir.path().join("none/f");
        assert!(check(orphan.to_str().unwrap(), HostPathType::FileOrCreate).is_err());
        assert!(!dir.path().join("none").exists());
    }
}
