use std::collections::HashMap;

use super::*;
use crate::proto::v1::{
    ConfigFile, ConfigVolume, DownwardApiFile, DownwardApiVolume, EmptyDirVolume, FieldSource,
    HostPathType, HostPathVolume, Mount, PodMetadata, field_source,
};

const NODE: NodeAllocatable = NodeAllocatable {
    cpu_millis: 2000,
    memory_bytes: 1 << 30,
};

fn volume(name: &str, source: Source) -> Volume {
    Volume {
        name: name.into(),
        source: Some(source),
    }
}

fn pod(volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        metadata: Some(PodMetadata {
            name: "web".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
            labels: HashMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "front".into()),
            ]),
            ..Default::default()
        }),
        volumes,
        ..Default::default()
    }
}

fn config(secret: bool) -> Source {
    Source::Config(ConfigVolume {
        files: vec![
            ConfigFile {
                path: "app.conf".into(),
                data: b"debug=true".to_vec(),
                mode: None,
            },
            ConfigFile {
                path: "keys/id".into(),
                data: b"k".to_vec(),
                mode: Some(0o400),
            },
        ],
        default_mode: Some(0o640),
        secret,
    })
}

fn labels_file() -> Source {
    Source::DownwardApi(DownwardApiVolume {
        files: vec![DownwardApiFile {
            path: "labels".into(),
            source: Some(FieldSource {
                source: Some(field_source::Source::FieldPath("metadata.labels".into())),
            }),
            mode: None,
        }],
        default_mode: None,
    })
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_layout_is_root_uid_name_and_tear_down_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    let p = pod(vec![
        volume("cache", Source::EmptyDir(EmptyDirVolume::default())),
        volume("conf", config(false)),
        volume("info", labels_file()),
    ]);
    assert_eq!(set_up(&root, &p, NODE).unwrap(), vec![]);
    let cache = root.join("uid-1/cache");
    assert!(cache.is_dir());
    assert_eq!(mode(&cache), 0o777);
    let conf = root.join("uid-1/conf");
    assert_eq!(
        fs::read_to_string(conf.join("app.conf")).unwrap(),
        "debug=true"
    );
    assert_eq!(
        mode(&conf.join("app.conf")),
        0o640,
        "the volume's default mode"
    );
    assert_eq!(mode(&conf.join("keys/id")), 0o400, "the file's own mode");
    assert_eq!(
        fs::read_to_string(root.join("uid-1/info/labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    // A re-run reuses what is there.
    fs::write(cache.join("data"), "kept").unwrap();
    let data_link = fs::read_link(conf.join(atomic::DATA_LINK)).unwrap();
    set_up(&root, &p, NODE).unwrap();
    assert_eq!(fs::read_to_string(cache.join("data")).unwrap(), "kept");
    assert_eq!(
        fs::read_link(conf.join(atomic::DATA_LINK)).unwrap(),
        data_link
    );

    let other = root.join("uid-1/.notes");
    fs::write(&other, "x").unwrap();
    let done = tear_down(&root, "uid-1").unwrap();
    assert_eq!(done.volumes, 3);
    assert_eq!(
        done.kept,
        vec![other.clone()],
        "what podstart did not make stays"
    );
    assert!(!cache.exists() && !conf.exists());
    fs::remove_file(&other).unwrap();
    let done = tear_down(&root, "uid-1").unwrap();
    assert!(done.existed && done.kept.is_empty());
    assert!(!root.join("uid-1").exists());
    assert_eq!(tear_down(&root, "uid-1").unwrap(), TornDown::default());
}

#[test]
fn host_path_volumes_are_checked_and_resolved_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    let made = dir.path().join("made");
    let p = pod(vec![volume(
        "host",
        Source::HostPath(HostPathVolume {
            path: made.display().to_string(),
            r#type: HostPathType::DirectoryOrCreate as i32,
        }),
    )]);
    set_up(&root, &p, NODE).unwrap();
    assert!(made.is_dir());
    assert!(
        !root.join("uid-1").exists(),
        "a hostPath volume has no directory of its own"
    );
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let bad = pod(vec![volume(
        "host",
        Source::HostPath(HostPathVolume {
            path: file.display().to_string(),
            r#type: HostPathType::Directory as i32,
        }),
    )]);
    let err = set_up(&root, &bad, NODE).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is \
             not a directory",
            file.display()
        )
    );
}

#[test]
fn mounts_resolve_to_volume_directories_and_sub_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    let p = pod(vec![
        volume("cache", Source::EmptyDir(EmptyDirVolume::default())),
        volume(
            "host",
            Source::HostPath(HostPathVolume {
                path: "/etc".into(),
                r#type: 0,
            }),
        ),
    ]);
    set_up(&root, &p, NODE).unwrap();
    let c = Container {
        name: "app".into(),
        mounts: vec![
            Mount {
                container_path: "/cache".into(),
                volume_name: "cache".into(),
                ..Default::default()
            },
            Mount {
                container_path: "/sub".into(),
                volume_name: "cache".into(),
                sub_path: "logs/app".into(),
                ..Default::default()
            },
            Mount {
                container_path: "/h".into(),
                volume_name: "host".into(),
                ..Default::default()
            },
            Mount {
                container_path: "/direct".into(),
                host_path: "/var/run".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let got = mount_sources(&root, &p, &c).unwrap();
    let real_root = fs::canonicalize(&root).unwrap();
    assert_eq!(
        got,
        vec![
            root.join("uid-1/cache").display().to_string(),
            real_root.join("uid-1/cache/logs/app").display().to_string(),
            "/etc".to_string(),
            "/var/run".to_string(),
        ]
    );
    assert!(root.join("uid-1/cache/logs/app").is_dir());
    std::os::unix::fs::symlink("/", root.join("uid-1/cache/escape")).unwrap();
    let mut out = c.clone();
    out.mounts[1].sub_path = "escape/etc".into();
    assert!(matches!(
        mount_sources(&root, &p, &out),
        Err(VolumeError::SubPath { .. })
    ));
}

#[test]
fn a_disk_empty_dir_over_its_limit_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    let p = pod(vec![volume(
        "scratch",
        Source::EmptyDir(EmptyDirVolume {
            medium: 0,
            size_limit_bytes: Some(4096),
        }),
    )]);
    assert_eq!(set_up(&root, &p, NODE).unwrap(), vec![]);
    fs::write(root.join("uid-1/scratch/big"), vec![1u8; 64 * 1024]).unwrap();
    let warnings = set_up(&root, &p, NODE).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .message
            .starts_with("Usage of EmptyDir volume \"scratch\" exceeds the limit"),
        "{warnings:?}"
    );
}

/// tmpfs needs root (CI runs as root); elsewhere the test says so and
/// checks nothing.
fn as_root() -> bool {
    let root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        eprintln!("not root: tmpfs mounts not tested");
    }
    root
}

#[test]
fn memory_empty_dirs_and_secrets_are_tmpfs_and_unmounted_at_tear_down() {
    if !as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    let p = pod(vec![
        volume(
            "mem",
            Source::EmptyDir(EmptyDirVolume {
                medium: StorageMedium::Memory as i32,
                size_limit_bytes: Some(1 << 20),
            }),
        ),
        volume("secret", config(true)),
    ]);
    set_up(&root, &p, NODE).unwrap();
    let mem = root.join("uid-1/mem");
    let secret = root.join("uid-1/secret");
    assert!(tmpfs::is_mount_point(&mem).unwrap());
    assert!(tmpfs::is_mount_point(&secret).unwrap());
    assert_eq!(
        fs::read_to_string(secret.join("app.conf")).unwrap(),
        "debug=true"
    );
    // The size limit holds: 2 MiB do not fit in 1 MiB.
    assert!(fs::write(mem.join("big"), vec![0u8; 2 << 20]).is_err());
    // Set up again: not mounted twice.
    set_up(&root, &p, NODE).unwrap();
    let done = tear_down(&root, "uid-1").unwrap();
    assert_eq!(done.volumes, 2, "{done:?}");
    assert!(done.kept.is_empty());
    assert!(!root.join("uid-1").exists());
}

#[test]
fn a_config_volume_read_back_without_files_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volumes");
    set_up(&root, &pod(vec![volume("conf", config(false))]), NODE).unwrap();
    let stripped = Source::Config(ConfigVolume {
        files: Vec::new(),
        default_mode: Some(0o640),
        secret: false,
    });
    set_up(&root, &pod(vec![volume("conf", stripped.clone())]), NODE).unwrap();
    let conf = root.join("uid-1/conf");
    assert_eq!(
        fs::read_to_string(conf.join("app.conf")).unwrap(),
        "debug=true"
    );
    // A fresh volume without files is written (empty).
    set_up(&root, &pod(vec![volume("other", stripped)]), NODE).unwrap();
    assert!(fs::symlink_metadata(root.join("uid-1/other/..data")).is_ok());
}
