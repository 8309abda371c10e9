//! Paths podstart builds from what a request names (pod uids, namespaces,
//! names, container names) under a configured root, and the only ways it
//! creates and deletes there.
//!
//! - [`under`]: each request part becomes exactly one plain component (not
//!   empty, `.` or `..`; no `/`, no NUL; at most 255 bytes), and the result
//!   is lexically inside the root.
//! - [`check_on_disk`]: right before a create or delete, the path's parent,
//!   with symbolic links resolved, is still the resolved root or inside it,
//!   and the path itself is not a symbolic link.
//! - [`create_dirs`]: a directory tree under the root, one level at a time,
//!   each level checked.
//! - [`remove_layout`]: deletes a directory only as deep and as wide as the
//!   layout podstart (or the runtime, at podstart's direction) writes there,
//!   entry by entry, never following a link; anything else stays, and so do
//!   the directories holding it.
use std::{
    fs, io,
    path::{Component, Path, PathBuf},
};

/// The longest name most Linux file systems accept (`NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// How much of a refused part an error message shows.
const SHOWN_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A request part cannot be one component of a path.
    #[error("{part:?} cannot name a directory under {}: it {rule}", root.display())]
    Part {
        root: PathBuf,
        part: String,
        rule: &'static str,
    },
    /// The path would leave its root (lexically, or through a symbolic link
    /// on the disk).
    #[error("{} is not inside {}", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl PathError {
    /// Whether the request itself is at fault (a part no path may be made
    /// of), rather than the node's file system.
    pub fn is_request_fault(&self) -> bool {
        matches!(self, PathError::Part { .. })
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
    move |source| PathError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why `part` cannot be one plain path component, if it cannot.
pub fn component_rule(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty")
    } else if part == "." || part == ".." {
        Some("is \".\" or \"..\"")
    } else if part.contains('/') {
        Some("contains '/'")
    } else if part.contains('\0') {
        Some("contains a NUL byte")
    } else if part.len() > MAX_COMPONENT_BYTES {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

/// At most the first 64 bytes of `part`, for messages.
fn shown(part: &str) -> String {
    if part.len() <= SHOWN_BYTES {
        return part.to_string();
    }
    let mut cut = SHOWN_BYTES;
    while !part.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &part[..cut])
}

/// `root/parts[0]/parts[1]/…`, each part one plain component; the result
/// is lexically inside `root` (never `root` itself).
pub fn under(root: &Path, parts: &[&str]) -> Result<PathBuf, PathError> {
    let mut path = root.to_path_buf();
    for part in parts {
        if let Some(rule) = component_rule(part) {
            return Err(PathError::Part {
                root: root.to_path_buf(),
                part: shown(part),
                rule,
            });
        }
        path.push(part);
    }
    if !lexically_inside(root, &path) {
        return Err(PathError::Outside {
            path,
            root: root.to_path_buf(),
        });
    }
    Ok(path)
}

/// `path` is `root` followed by one or more plain components.
fn lexically_inside(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root).is_ok_and(|rest| {
        rest.components().next().is_some()
            && rest.components().all(|c| matches!(c, Component::Normal(_)))
    })
}

/// Asserts, on the disk, that `path` is inside `root`: lexically, its
/// parent resolved (symbolic links followed) is the resolved root or inside
/// it, and `path` itself, if it exists, is not a symbolic link.
pub fn check_on_disk(root: &Path, path: &Path) -> Result<(), PathError> {
    let outside = || PathError::Outside {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
    };
    if !lexically_inside(root, path) {
        return Err(outside());
    }
    let parent = path.parent().ok_or_else(outside)?;
    let real_root = fs::canonicalize(root).map_err(io_error(root))?;
    let real_parent = fs::canonicalize(parent).map_err(io_error(parent))?;
    if !real_parent.starts_with(&real_root) {
        return Err(outside());
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(outside()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Creates `root/parts…` (the root and its parents as configured, then one
/// level per part, each checked with [`check_on_disk`] first and refused
/// when it is not a directory); returns the path.
pub fn create_dirs(root: &Path, parts: &[&str]) -> Result<PathBuf, PathError> {
    let path = under(root, parts)?;
    fs::create_dir_all(root).map_err(io_error(root))?;
    let mut at = root.to_path_buf();
    for part in parts {
        at.push(part);
        check_on_disk(root, &at)?;
        match fs::create_dir(&at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&at).map_err(io_error(&at))?;
                if !meta.is_dir() {
                    return Err(io_error(&at)(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    )));
                }
            }
            Err(e) => return Err(io_error(&at)(e)),
        }
    }
    Ok(path)
}

/// Which names a level of a layout holds.
pub type Level = fn(&str) -> bool;

/// What [`remove_layout`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The directory was there.
    pub existed: bool,
    /// Files removed.
    pub files: usize,
    /// Entries left because the layout does not hold them (and the
    /// directories above them, which stay).
    pub kept: Vec<PathBuf>,
}

impl Removed {
    /// The directory existed and is gone.
    pub fn gone(&self) -> bool {
        self.existed && self.kept.is_empty()
    }
}

/// Deletes the directory `root/parts…` as far as `layout` describes it:
/// `layout[0]` accepts the names of its entries, `layout[1]` those one
/// level down, and so on; entries of the last level are regular files,
/// those above it directories. Symbolic links are never followed (nor
/// removed), an entry the layout does not accept stays, and so does every
/// directory above it. A directory that is not there is no error.
pub fn remove_layout(root: &Path, parts: &[&str], layout: &[Level]) -> Result<Removed, PathError> {
    let dir = under(root, parts)?;
    let mut removed = Removed::default();
    let meta = match fs::symlink_metadata(&dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    removed.existed = true;
    check_on_disk(root, &dir)?;
    if !meta.is_dir() {
        removed.kept.push(dir);
        return Ok(removed);
    }
    remove_level(&dir, layout, &mut removed)?;
    Ok(removed)
}

/// Removes what `layout` accepts inside `dir`, then `dir` if that emptied
/// it.
fn remove_level(dir: &Path, layout: &[Level], removed: &mut Removed) -> Result<(), PathError> {
    let kept_before = removed.kept.len();
    if let Some((accepts, below)) = layout.split_first() {
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let path = entry.path();
            // The entry's own type: a symbolic link is not followed.
            let kind = entry.file_type().map_err(io_error(&path))?;
            let accepted = entry.file_name().to_str().is_some_and(accepts);
            if accepted && below.is_empty() && kind.is_file() {
                match fs::remove_file(&path) {
                    Ok(()) => removed.files += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path)(e)),
                }
            } else if accepted && !below.is_empty() && kind.is_dir() {
                remove_level(&path, below, removed)?;
            } else {
                removed.kept.push(path);
            }
        }
    }
    if removed.kept.len() == kept_before {
        match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Something appeared meanwhile: it stays, and so does `dir`.
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                removed.kept.push(dir.to_path_buf());
            }
            Err(e) => return Err(io_error(dir)(e)),
        }
    }
    Ok(())
}

/// A name podstart makes from a validated request part: one plain
/// component that is not hidden.
pub fn is_plain_name(name: &str) -> bool {
    component_rule(name).is_none() && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_single_plain_components() {
        let root = Path::new("/r");
        assert_eq!(under(root, &["a", "b"]).unwrap(), PathBuf::from("/r/a/b"));
        assert_eq!(
            under(root, &["ns_web_.."]).unwrap(),
            PathBuf::from("/r/ns_web_..")
        );
        for (part, rule) in [
            ("", "is empty"),
            (".", "is \".\" or \"..\""),
            ("..", "is \".\" or \"..\""),
            ("/", "contains '/'"),
            ("../x", "contains '/'"),
            ("/etc", "contains '/'"),
            ("a\0b", "contains a NUL byte"),
        ] {
            match under(root, &["ok", part]) {
                Err(PathError::Part { rule: got, .. }) => assert_eq!(got, rule, "{part:?}"),
                other => panic!("{part:?}: {other:?}"),
            }
        }
        let long = "x".repeat(300);
        let err = under(root, &[&long]).unwrap_err();
        assert!(err.is_request_fault());
        assert!(err.to_string().len() < 200, "the part is cut: {err}");
        assert!(matches!(under(root, &[]), Err(PathError::Outside { .. })));
    }

    #[test]
    fn a_symbolic_link_out_of_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        assert!(matches!(
            create_dirs(&root, &["link", "x"]),
            Err(PathError::Outside { .. })
        ));
        assert!(!outside.join("x").exists());
        assert!(matches!(
            remove_layout(&root, &["link"], &[|_| true]),
            Err(PathError::Outside { .. })
        ));
        assert!(outside.exists() && root.join("link").exists());
        // A root that is itself a link is followed: it is the configured root.
        let alias = dir.path().join("alias");
        std::os::unix::fs::symlink(&root, &alias).unwrap();
        assert_eq!(create_dirs(&alias, &["p"]).unwrap(), alias.join("p"));
        assert!(root.join("p").is_dir());
    }

    #[test]
    fn removal_keeps_what_the_layout_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pod = create_dirs(root, &["pod", "c1"]).unwrap();
        fs::write(pod.join("0.log"), "x").unwrap();
        fs::write(pod.join("notes"), "x").unwrap();
        let other = create_dirs(root, &["pod", "c2"]).unwrap();
        fs::write(other.join("1.log"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("pod/c2/1.log"), pod.join("2.log")).unwrap();
        let layout: &[Level] = &[is_plain_name, |n| n.ends_with(".log")];

        let r = remove_layout(root, &["pod"], layout).unwrap();
        assert!(r.existed && !r.gone());
        assert_eq!(r.files, 2);
        let mut kept = r.kept.clone();
        kept.sort();
        assert_eq!(kept, vec![pod.join("2.log"), pod.join("notes")]);
        assert!(!other.exists(), "an emptied directory goes");
        assert!(pod.join("notes").exists());

        fs::remove_file(pod.join("notes")).unwrap();
        fs::remove_file(pod.join("2.log")).unwrap();
        let r = remove_layout(root, &["pod"], layout).unwrap();
        assert!(r.gone());
        assert!(!root.join("pod").exists());
        assert_eq!(
            remove_layout(root, &["pod"], layout).unwrap(),
            Removed::default()
        );
    }
}
