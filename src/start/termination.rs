//! Termination messages, as the kubelet handles them: before a container is
//! created, an empty file `<state root>/<pod uid>/containers/<name>/<8 hex>`
//! (mode 0666) is mounted at its `terminationMessagePath`; after it exits,
//! the message is the file's last 4 KiB, or, under FallbackToLogsOnError
//! with a non-zero exit and an empty file, the last 80 lines / 2 KiB of its
//! log. Only file-system work and parsing here; no CRI calls, no events.
use std::{
    io::{Read, Seek, SeekFrom},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use k8s_cri::v1 as cri;

use crate::paths::{self, PathError, Removed};
use crate::proto::v1::Container;
use crate::spec::labels;

/// Most of the file that is read (the kubelet's
/// `MaxContainerTerminationMessageLength`).
pub const MAX_MESSAGE_BYTES: u64 = 4 * 1024;
/// Log lines read for FallbackToLogsOnError.
pub const FALLBACK_LOG_LINES: usize = 80;
/// Most of those lines kept.
pub const FALLBACK_LOG_BYTES: usize = 2 * 1024;

/// The directory of the pod's state under the state root: `<root>/<uid>`.
pub fn pod_dir(state_root: &Path, uid: &str) -> Result<PathBuf, PathError> {
    paths::under(state_root, &[uid])
}

/// The length of a termination message file's name (hex digits).
const MESSAGE_FILE_NAME_LEN: usize = 8;

/// Creates the termination message file of a container and returns the
/// mount that puts it at the container's termination message path. Every
/// directory on the way is checked to be inside the state root.
pub fn prepare(state_root: &Path, uid: &str, c: &Container) -> Result<cri::Mount, PathError> {
    let dir = paths::create_dirs(state_root, &[uid, CONTAINERS, &c.name])?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let file = dir.join(id.get(..MESSAGE_FILE_NAME_LEN).unwrap_or(&id));
    let io = |source| PathError::Io {
        path: file.clone(),
        source,
    };
    // A new file, never one that was there (nor what a link there names).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .map_err(io)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
    let container_path = if c.termination_message_path.is_empty() {
        labels::DEFAULT_TERMINATION_MESSAGE_PATH.to_string()
    } else {
        c.termination_message_path.clone()
    };
    Ok(cri::Mount {
        container_path,
        host_path: file.display().to_string(),
        ..Default::default()
    })
}

/// The one directory level between a pod's state directory and its
/// containers'.
const CONTAINERS: &str = "containers";

/// Removes what [`prepare`] made for the pod `uid`: its
/// `containers/<name>/<8 hex>` files and those directories, then the pod's
/// directory once empty. Anything else stays (see `Removed::kept`).
pub fn remove_pod_dir(state_root: &Path, uid: &str) -> Result<Removed, PathError> {
    paths::remove_layout(
        state_root,
        &[uid],
        &[|n| n == CONTAINERS, paths::is_plain_name, is_message_file],
    )
}

/// A name [`prepare`] gives a termination message file.
fn is_message_file(name: &str) -> bool {
    name.len() == MESSAGE_FILE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The message of an exited container: the runtime's own message, then
/// (after ": ") what the container left in its termination message file or,
/// under FallbackToLogsOnError, in its log.
pub fn message(status: &cri::ContainerStatus) -> String {
    let path = status
        .annotations
        .get(labels::TERMINATION_MESSAGE_PATH)
        .cloned()
        .unwrap_or_default();
    let fallback = status
        .annotations
        .get(labels::TERMINATION_MESSAGE_POLICY)
        .is_some_and(|p| p == "FallbackToLogsOnError")
        && status.exit_code != 0
        && status.reason != "ContainerCannotRun";
    // Only a file laid out as `prepare` makes it for this container: a
    // mount of the request's own at the same path is never read.
    let from_file = status
        .mounts
        .iter()
        .filter(|m| !path.is_empty() && m.container_path == path)
        .rfind(|m| is_prepared_file(Path::new(&m.host_path), status))
        .map(|m| tail_bytes(Path::new(&m.host_path), MAX_MESSAGE_BYTES))
        .unwrap_or_default();
    let written = if from_file.is_empty() && fallback {
        log_tail(Path::new(&status.log_path))
    } else {
        from_file
    };
    match (status.message.is_empty(), written.is_empty()) {
        (_, true) => status.message.clone(),
        (true, false) => written,
        (false, false) => format!("{}: {written}", status.message),
    }
}

/// Whether `file` is `…/<pod uid>/containers/<container name>/<8 hex>`
/// for the container of `status`, and a regular file (not a link).
fn is_prepared_file(file: &Path, status: &cri::ContainerStatus) -> bool {
    let container = status.metadata.as_ref().map(|m| m.name.as_str());
    let uid = status.labels.get(labels::POD_UID).map(String::as_str);
    let dir = file.parent();
    let containers = dir.and_then(Path::parent);
    let pod = containers.and_then(Path::parent);
    name(Some(file)).is_some_and(is_message_file)
        && container.is_some()
        && name(dir) == container
        && name(containers) == Some(CONTAINERS)
        && uid.is_some()
        && name(pod) == uid
        && std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_file())
}

/// The last component of `p`, as text.
fn name(p: Option<&Path>) -> Option<&str> {
    p.and_then(Path::file_name).and_then(|n| n.to_str())
}

/// The last `max` bytes of a file, as text; empty when it cannot be read.
fn tail_bytes(path: &Path, max: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_default()
}

/// The last 80 lines of a CRI log (`<time> <stream> <P|F> <text>`, partial
/// lines joined), at most 2 KiB of them.
pub fn log_tail(path: &Path) -> String {
    let Ok(content) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let mut lines: Vec<String> = Vec::new();
    let mut partial = String::new();
    for raw in content.lines() {
        let mut fields = raw.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        partial.push_str(fields.next().unwrap_or_default());
        if tag != "P" {
            lines.push(std::mem::take(&mut partial));
        }
    }
    if !partial.is_empty() {
        lines.push(partial);
    }
    let start = lines.len().saturating_sub(FALLBACK_LOG_LINES);
    let mut text: String = lines[start..].iter().map(|l| format!("{l}\n")).collect();
    if text.len() > FALLBACK_LOG_BYTES {
        let mut cut = FALLBACK_LOG_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn status(dir: &Path, policy: &str, exit_code: i32, file_text: &str) -> cri::ContainerStatus {
        let file = dir.join("uid1/containers/app/0123abcd");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, file_text).unwrap();
        cri::ContainerStatus {
            exit_code,
            metadata: Some(cri::ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            labels: HashMap::from([(labels::POD_UID.to_string(), "uid1".to_string())]),
            log_path: dir.join("0.log").display().to_string(),
            annotations: HashMap::from([
                (
                    labels::TERMINATION_MESSAGE_PATH.to_string(),
                    "/dev/termination-log".to_string(),
                ),
                (
                    labels::TERMINATION_MESSAGE_POLICY.to_string(),
                    policy.to_string(),
                ),
            ]),
            mounts: vec![cri::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: file.display().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn file_first_then_logs_only_on_error_with_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let log: String = (0..100)
            .map(|i| format!("2025-01-01T00:00:00.000000000Z stdout F line {i}\n"))
            .collect();
        std::fs::write(dir.path().join("0.log"), log).unwrap();

        let s = status(dir.path(), "File", 1, "written");
        assert_eq!(message(&s), "written");
        let s = status(dir.path(), "File", 1, "");
        assert_eq!(message(&s), "", "File policy never reads logs");
        let s = status(dir.path(), "FallbackToLogsOnError", 0, "");
        assert_eq!(message(&s), "", "exit 0 never reads logs");
        let s = status(dir.path(), "FallbackToLogsOnError", 2, "from file");
        assert_eq!(message(&s), "from file", "a written file wins");
        let s = status(dir.path(), "FallbackToLogsOnError", 2, "");
        let m = message(&s);
        assert!(m.starts_with("line 20\n"), "the last 80 lines: {m}");
        assert!(m.ends_with("line 99\n"), "{m}");
        let mut s = status(dir.path(), "File", 1, "bye");
        s.message = "runtime said".into();
        assert_eq!(message(&s), "runtime said: bye");
    }

    #[test]
    fn only_the_file_podstart_made_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("host-secret");
        std::fs::write(&secret, "root's secret").unwrap();
        let mut s = status(dir.path(), "File", 1, "mine");
        // The request's own mount at the same path, listed first.
        let mut theirs = s.mounts[0].clone();
        theirs.host_path = secret.display().to_string();
        s.mounts.insert(0, theirs.clone());
        assert_eq!(message(&s), "mine");
        s.mounts.push(theirs);
        assert_eq!(message(&s), "mine", "whatever the order");
        s.mounts
            .retain(|m| m.host_path == secret.display().to_string());
        assert_eq!(message(&s), "");
        // A link in podstart's place is not followed.
        let s = status(dir.path(), "File", 1, "mine");
        let file = Path::new(&s.mounts[0].host_path);
        std::fs::remove_file(file).unwrap();
        std::os::unix::fs::symlink(&secret, file).unwrap();
        assert_eq!(message(&s), "");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root's secret");
    }

    #[test]
    fn log_tail_joins_partials_and_caps_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "t stdout P hel\nt stdout F lo\nt stderr F world\n").unwrap();
        assert_eq!(log_tail(&p), "hello\nworld\n");
        let long: String = (0..50)
            .map(|_| format!("t stdout F {}\n", "x".repeat(100)))
            .collect();
        std::fs::write(&p, long).unwrap();
        assert_eq!(log_tail(&p).len(), FALLBACK_LOG_BYTES);
    }

    #[test]
    fn the_file_is_world_writable_and_mounted_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        let m = prepare(dir.path(), "uid1", &c).unwrap();
        assert_eq!(m.container_path, "/dev/termination-log");
        let meta = std::fs::metadata(&m.host_path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        assert!(m.host_path.contains("/uid1/containers/app/"));
    }

    #[test]
    fn removal_takes_only_the_message_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        let m = prepare(&root, "uid1", &c).unwrap();
        let stray = root.join("uid1/containers/app/not-ours");
        std::fs::write(&stray, "x").unwrap();
        let r = remove_pod_dir(&root, "uid1").unwrap();
        assert_eq!(r.files, 1);
        assert_eq!(r.kept, vec![stray.clone()]);
        assert!(!Path::new(&m.host_path).exists() && stray.exists());
        std::fs::remove_file(&stray).unwrap();
        assert!(remove_pod_dir(&root, "uid1").unwrap().gone());
        assert!(root.is_dir() && !root.join("uid1").exists());
    }

    #[test]
    fn a_uid_that_is_not_one_component_makes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        for uid in ["..", ".", "", "../x", "a/b", "a\0b"] {
            assert!(prepare(&root, uid, &c).is_err(), "{uid:?}");
            assert!(remove_pod_dir(&root, uid).is_err(), "{uid:?}");
        }
        assert!(!dir.path().join("containers").exists());
        assert!(!dir.path().join("x").exists());
    }
}
