//! Files of a config or downward API volume, written as the kubelet's
//! AtomicWriter writes them: the payload goes into a new hidden data
//! directory `..<UTC timestamp>.<random>`, a `..data` symbolic link names
//! it (made as `..data_tmp`, then renamed over `..data`, so a reader sees
//! the old payload or the new one, never a mix), and each top-level name of
//! the payload is a symbolic link `<name>` → `..data/<name>`. The previous
//! data directory, and top-level links the new payload no longer has, are
//! removed afterwards. A payload equal to the one in place changes nothing.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use super::error::VolumeError;

/// The link that names the current data directory.
pub const DATA_LINK: &str = "..data";
/// The link made first, then renamed over [`DATA_LINK`].
const DATA_LINK_TMP: &str = "..data_tmp";
/// Directories inside the payload are made with this mode.
const DIR_MODE: u32 = 0o755;

/// One file of a payload: its content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path (validated: no "..", not absolute) → content.
pub type Payload = BTreeMap<String, FileContent>;

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The payload in place was the same.
    Unchanged,
    /// A new data directory was made and `..data` now names it.
    Swapped,
}

/// Writes `payload` into `dir` (which exists) the AtomicWriter way.
pub fn write(dir: &Path, payload: &Payload) -> Result<Written, VolumeError> {
    let data_link = dir.join(DATA_LINK);
    let old = match fs::read_link(&data_link) {
        Ok(target) => Some(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(VolumeError::io(&data_link)(e)),
    };
    if let Some(old) = &old
        && same_payload(&dir.join(old), payload)?
    {
        return Ok(Written::Unchanged);
    }
    let ts_name = new_data_dir(dir)?;
    let ts_dir = dir.join(&ts_name);
    for (path, content) in payload {
        write_file(&ts_dir, path, content)?;
    }
    // User-visible names: one link per top-level component.
    let tops: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        match fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(VolumeError::io(&link)(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a link the volume made",
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                symlink(Path::new(DATA_LINK).join(top), &link).map_err(VolumeError::io(&link))?;
            }
            Err(e) => return Err(VolumeError::io(&link)(e)),
        }
    }
    let tmp = dir.join(DATA_LINK_TMP);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(VolumeError::io(&tmp)(e)),
    }
    symlink(&ts_name, &tmp).map_err(VolumeError::io(&tmp))?;
    fs::rename(&tmp, &data_link).map_err(VolumeError::io(&data_link))?;
    // The old payload goes, and the names only it had.
    if let Some(old) = old
        && is_data_dir_name(&old)
    {
        let old_dir = dir.join(&old);
        if let Err(e) = fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), error = %e, "removing an old volume data directory");
        }
    }
    for entry in fs::read_dir(dir).map_err(VolumeError::io(dir))? {
        let entry = entry.map_err(VolumeError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link && !name.starts_with("..") && !tops.contains(name) {
            fs::remove_file(entry.path()).map_err(VolumeError::io(&entry.path()))?;
        }
    }
    Ok(Written::Swapped)
}

/// A data directory name: `..` followed by a timestamp, never `..data`.
fn is_data_dir_name(name: &Path) -> bool {
    name.to_str().is_some_and(|n| {
        n.starts_with("..")
            && n != DATA_LINK
            && n != DATA_LINK_TMP
            && !n.contains('/')
            && n.len() > 2
            && n.as_bytes()[2].is_ascii_digit()
    })
}

/// Makes `..<UTC yyyy_mm_dd_hh_mm_ss>.<random>` in `dir`; returns its name.
fn new_data_dir(dir: &Path) -> Result<String, VolumeError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = utc_stamp(secs);
    loop {
        let name = format!("..{stamp}.{:010}", fastrand::u32(..));
        let path = dir.join(&name);
        match fs::create_dir(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(VolumeError::io(&path))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(VolumeError::io(&path)(e)),
        }
    }
}

/// `2006_01_02_15_04_05` for a time in seconds since the epoch (UTC).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn write_file(ts_dir: &Path, rel: &str, content: &FileContent) -> Result<(), VolumeError> {
    let path = ts_dir.join(rel);
    if let Some(parent) = path.parent()
        && parent != ts_dir
    {
        fs::create_dir_all(parent).map_err(VolumeError::io(parent))?;
        let mut at = parent.to_path_buf();
        while at != ts_dir {
            fs::set_permissions(&at, fs::Permissions::from_mode(DIR_MODE))
                .map_err(VolumeError::io(&at))?;
            if !at.pop() {
                break;
            }
        }
    }
    fs::write(&path, &content.data).map_err(VolumeError::io(&path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(content.mode))
        .map_err(VolumeError::io(&path))
}

/// Whether the data directory `ts_dir` holds exactly `payload`.
fn same_payload(ts_dir: &Path, payload: &Payload) -> Result<bool, VolumeError> {
    let mut found = Vec::new();
    if !list_files(ts_dir, &mut found)? {
        return Ok(false);
    }
    if found.len() != payload.len() {
        return Ok(false);
    }
    for path in found {
        let rel = path
            .strip_prefix(ts_dir)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or_default();
        let Some(want) = payload.get(rel) else {
            return Ok(false);
        };
        let meta = fs::symlink_metadata(&path).map_err(VolumeError::io(&path))?;
        if meta.permissions().mode() & 0o7777 != want.mode {
            return Ok(false);
        }
        if fs::read(&path).map_err(VolumeError::io(&path))? != want.data {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Regular files under `dir`; false when something else is there (or the
/// directory is gone).
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<bool, VolumeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(VolumeError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(VolumeError::io(dir))?;
        let kind = entry.file_type().map_err(VolumeError::io(&entry.path()))?;
        if kind.is_dir() {
            if !list_files(&entry.path(), out)? {
                return Ok(false);
            }
        } else if kind.is_file() {
            out.push(entry.path());
        } else {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: &[(&str, &str, u32)]) -> Payload {
        items
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileContent {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn data_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| is_data_dir_name(Path::new(n)))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_are_links_through_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload(&[
            ("game.properties", "lives=3", 0o644),
            ("ui/color", "red", 0o400),
        ]);
        assert_eq!(write(dir.path(), &p).unwrap(), Written::Swapped);
        let link = dir.path().join("game.properties");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("..data/game.properties")
        );
        assert_eq!(fs::read_to_string(&link).unwrap(), "lives=3");
        assert_eq!(
            fs::read_to_string(dir.path().join("ui/color")).unwrap(),
            "red"
        );
        let mode = fs::metadata(dir.path().join("ui/color"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let target = fs::read_link(dir.path().join(DATA_LINK)).unwrap();
        assert_eq!(data_dirs(dir.path()), vec![target.display().to_string()]);
        // The same payload again changes nothing.
        assert_eq!(write(dir.path(), &p).unwrap(), Written::Unchanged);
        assert_eq!(fs::read_link(dir.path().join(DATA_LINK)).unwrap(), target);
    }

    #[test]
    fn an_update_swaps_the_data_link_and_removes_the_old_data() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &payload(&[("a", "1", 0o644), ("b", "2", 0o644)]),
        )
        .unwrap();
        let first = fs::read_link(dir.path().join(DATA_LINK)).unwrap();
        let next = payload(&[("a", "one", 0o644), ("c", "3", 0o600)]);
        assert_eq!(write(dir.path(), &next).unwrap(), Written::Swapped);
        let second = fs::read_link(dir.path().join(DATA_LINK)).unwrap();
        assert_ne!(first, second);
        assert!(
            !dir.path().join(&first).exists(),
            "the old data directory goes"
        );
        assert_eq!(data_dirs(dir.path()), vec![second.display().to_string()]);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "one");
        assert!(
            fs::symlink_metadata(dir.path().join("b")).is_err(),
            "b is gone"
        );
        assert!(!dir.path().join(DATA_LINK_TMP).exists());
        // A mode change alone is an update too.
        let modes = payload(&[("a", "one", 0o600), ("c", "3", 0o600)]);
        assert_eq!(write(dir.path(), &modes).unwrap(), Written::Swapped);
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_stamp(0), "1970_01_01_00_00_00");
        assert_eq!(utc_stamp(951_782_400 + 3661), "2000_02_29_01_01_01");
        assert_eq!(utc_stamp(1_798_761_599), "2026_12_31_23_59_59");
    }
}
