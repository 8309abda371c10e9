//! Pod volumes against the simulated runtime (which mounts nothing): the
//! mounts podstart sends with CreateContainer, the files it lays out under
//! `--pod-volume-root`, a failed set-up (FailedMount, before any container),
//! a re-run that reuses what is there, and StopPod removing it all.
use std::{collections::HashMap, fs, path::Path};

use podstart::proto::v1::{
    ConfigFile, ConfigVolume, DownwardApiFile, DownwardApiVolume, EmptyDirVolume, FieldSource,
    HostPathType, HostPathVolume, Mount, PodSpec, Step, StorageMedium, Volume, field_source,
    start_event::Payload, volume::Source,
};

use crate::common::{Harness, container, pod, reasons, request, terminal};

fn volume(name: &str, source: Source) -> Volume {
    Volume {
        name: name.into(),
        source: Some(source),
    }
}

fn mount(volume: &str, at: &str, sub_path: &str) -> Mount {
    Mount {
        container_path: at.into(),
        volume_name: volume.into(),
        sub_path: sub_path.into(),
        ..Default::default()
    }
}

/// A pod with every kind of volume but hostPath, mounted by its app.
fn volume_pod(uid: &str) -> PodSpec {
    let mut app = container("app");
    app.mounts = vec![
        mount("cache", "/cache", ""),
        mount("cache", "/logs", "logs/app"),
        mount("conf", "/etc/app", ""),
        mount("info", "/etc/podinfo", ""),
    ];
    let mut p = pod("web", uid, vec![app]);
    p.metadata.as_mut().unwrap().labels = HashMap::from([
        ("app".into(), "web".into()),
        ("tier".into(), "front".into()),
    ]);
    p.volumes = vec![
        volume("cache", Source::EmptyDir(EmptyDirVolume::default())),
        volume(
            "conf",
            Source::Config(ConfigVolume {
                files: vec![ConfigFile {
                    path: "app.properties".into(),
                    data: b"color=blue".to_vec(),
                    mode: Some(0o600),
                }],
                default_mode: None,
                secret: false,
            }),
        ),
        volume(
            "info",
            Source::DownwardApi(DownwardApiVolume {
                files: vec![DownwardApiFile {
                    path: "labels".into(),
                    source: Some(FieldSource {
                        source: Some(field_source::Source::FieldPath("metadata.labels".into())),
                    }),
                    mode: None,
                }],
                default_mode: None,
            }),
        ),
    ];
    p
}

fn started_ids(events: &[podstart::proto::v1::StartEvent]) -> Vec<String> {
    match terminal(events) {
        Payload::PodStarted(done) => done
            .containers
            .iter()
            .map(|c| c.container_id.clone())
            .collect(),
        other => panic!("not started: {other:?} {:#?}", reasons(events)),
    }
}

#[tokio::test]
async fn volumes_are_laid_out_mounted_by_name_and_removed_at_stop() {
    let h = Harness::new().await;
    let events = h.start(request(volume_pod("vol-1"))).await.unwrap();
    let ids = started_ids(&events);
    let pod_dir = h.volume_root.join("vol-1");
    let real = |p: &Path| fs::canonicalize(p).unwrap().display().to_string();

    // What CreateContainer carried: each mount's host path under the
    // volume root; the config and downward volumes read-only.
    let config = h.sim.container_config(&ids[0]).unwrap();
    let mounts: Vec<(String, String, bool)> = config
        .mounts
        .iter()
        .filter(|m| m.container_path != "/dev/termination-log")
        .map(|m| (m.container_path.clone(), m.host_path.clone(), m.readonly))
        .collect();
    assert_eq!(
        mounts,
        vec![
            (
                "/cache".into(),
                pod_dir.join("cache").display().to_string(),
                false
            ),
            ("/logs".into(), real(&pod_dir.join("cache/logs/app")), false),
            (
                "/etc/app".into(),
                pod_dir.join("conf").display().to_string(),
                true
            ),
            (
                "/etc/podinfo".into(),
                pod_dir.join("info").display().to_string(),
                true
            ),
        ]
    );
    // On the disk: the sub path made, the files written through `..data`.
    assert!(pod_dir.join("cache/logs/app").is_dir());
    assert_eq!(
        fs::read_to_string(pod_dir.join("conf/app.properties")).unwrap(),
        "color=blue"
    );
    assert!(
        fs::symlink_metadata(pod_dir.join("conf/..data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(pod_dir.join("info/labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );

    // The same start again: already running, and the volumes are reused.
    fs::write(pod_dir.join("cache/written-by-app"), "kept").unwrap();
    let data = fs::read_link(pod_dir.join("conf/..data")).unwrap();
    let again = h.start(request(volume_pod("vol-1"))).await.unwrap();
    assert!(matches!(terminal(&again), Payload::PodStarted(d) if d.already_running));
    assert_eq!(
        fs::read_to_string(pod_dir.join("cache/written-by-app")).unwrap(),
        "kept"
    );
    assert_eq!(fs::read_link(pod_dir.join("conf/..data")).unwrap(), data);

    let stopped = h.stop("vol-1").await.unwrap();
    let removed: Vec<_> = stopped
        .iter()
        .filter(|e| e.reason == "VolumesRemoved")
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(
        removed,
        vec![format!("Removed 3 pod volume(s) in {}", pod_dir.display())],
        "{:#?}",
        reasons(&stopped)
    );
    assert!(!pod_dir.exists(), "the pod's volumes are gone");
    assert!(h.volume_root.exists(), "the root stays");
}

#[tokio::test]
async fn a_host_path_type_check_fails_the_start_before_any_container() {
    let h = Harness::privileged().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let made = dir.path().join("made/here");
    let mut app = container("app");
    app.mounts = vec![mount("made", "/made", ""), mount("file", "/file", "")];
    let mut p = pod("hp", "vol-2", vec![app]);
    p.volumes = vec![
        volume(
            "made",
            Source::HostPath(HostPathVolume {
                path: made.display().to_string(),
                r#type: HostPathType::DirectoryOrCreate as i32,
            }),
        ),
        volume(
            "file",
            Source::HostPath(HostPathVolume {
                path: file.display().to_string(),
                r#type: HostPathType::Directory as i32,
            }),
        ),
    ];
    let events = h.start(request(p)).await.unwrap();
    let want = format!(
        "MountVolume.SetUp failed for volume \"file\" : hostPath type check failed: {} is not \
         a directory",
        file.display()
    );
    let failed = events
        .iter()
        .find(|e| e.reason == "FailedMount")
        .unwrap_or_else(|| panic!("{:#?}", reasons(&events)));
    assert_eq!(failed.message, want);
    assert_eq!(failed.step(), Step::Sandbox);
    match terminal(&events) {
        Payload::PodFailed(f) => {
            assert_eq!(f.reason, "FailedMount");
            assert_eq!(f.step(), Step::Sandbox);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !events.iter().any(|e| e.reason == "Created"),
        "no container was created: {:#?}",
        reasons(&events)
    );
    assert!(made.is_dir(), "DirectoryOrCreate made its directory first");
    h.stop("vol-2").await.unwrap();
}

#[tokio::test]
async fn host_path_volumes_mount_their_path_and_subpaths_stay_inside() {
    let h = Harness::privileged().await;
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    fs::create_dir_all(&host).unwrap();
    std::os::unix::fs::symlink("/etc", host.join("escape")).unwrap();
    let hp = |sub: &str| {
        let mut app = container("app");
        app.mounts = vec![mount("host", "/host", sub)];
        let mut p = pod("hp", "vol-3", vec![app]);
        p.volumes = vec![volume(
            "host",
            Source::HostPath(HostPathVolume {
                path: host.display().to_string(),
                r#type: HostPathType::Directory as i32,
            }),
        )];
        p
    };
    let events = h.start(request(hp("inner"))).await.unwrap();
    let ids = started_ids(&events);
    let config = h.sim.container_config(&ids[0]).unwrap();
    let real = fs::canonicalize(&host).unwrap().join("inner");
    assert!(
        config
            .mounts
            .iter()
            .any(|m| m.container_path == "/host" && m.host_path == real.display().to_string()),
        "{:?}",
        config.mounts
    );
    h.stop("vol-3").await.unwrap();
    assert!(real.is_dir(), "a hostPath volume is the node's: it stays");

    // A subPath through a link out of the volume is refused at create.
    let events = h.start(request(hp("escape/ssl"))).await.unwrap();
    match terminal(&events) {
        Payload::PodFailed(f) => {
            assert_eq!(f.reason, "CreateContainerConfigError", "{f:?}");
            assert!(f.message.contains("outside the volume"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
    h.stop("vol-3").await.unwrap();
}

/// tmpfs needs root (CI runs as root); elsewhere the test checks nothing.
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
        eprintln!("not root: tmpfs volumes not tested");
    }
    root
}

#[tokio::test]
async fn memory_and_secret_volumes_are_tmpfs_until_stop() {
    if !as_root() {
        return;
    }
    let h = Harness::new().await;
    let mut app = container("app");
    app.mounts = vec![mount("mem", "/mem", ""), mount("token", "/secret", "")];
    let mut p = pod("mem", "vol-4", vec![app]);
    p.volumes = vec![
        volume(
            "mem",
            Source::EmptyDir(EmptyDirVolume {
                medium: StorageMedium::Memory as i32,
                size_limit_bytes: Some(1 << 20),
            }),
        ),
        volume(
            "token",
            Source::Config(ConfigVolume {
                files: vec![ConfigFile {
                    path: "token".into(),
                    data: b"s3cr3t".to_vec(),
                    mode: None,
                }],
                default_mode: None,
                secret: true,
            }),
        ),
    ];
    let events = h.start(request(p)).await.unwrap();
    started_ids(&events);
    let mounted = fs::read_to_string("/proc/self/mounts").unwrap();
    let mem = h.volume_root.join("vol-4/mem");
    let secret = h.volume_root.join("vol-4/token");
    for dir in [&mem, &secret] {
        let line = format!("tmpfs {} tmpfs", fs::canonicalize(dir).unwrap().display());
        assert!(mounted.contains(&line), "{line} not in the mounts");
    }
    assert!(
        mounted.contains("size=1024k"),
        "the size limit is the tmpfs size"
    );
    assert_eq!(fs::read_to_string(secret.join("token")).unwrap(), "s3cr3t");
    h.stop("vol-4").await.unwrap();
    let mounted = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounted.contains(&h.volume_root.display().to_string()),
        "unmounted at stop"
    );
    assert!(!h.volume_root.join("vol-4").exists());
}

#[tokio::test]
async fn an_ephemeral_container_mounts_the_pod_s_volumes_by_name() {
    let h = Harness::new().await;
    started_ids(&h.start(request(volume_pod("vol-5"))).await.unwrap());
    let mut debug = container("debug");
    debug.mounts = vec![mount("conf", "/conf", "")];
    let stream = h
        .client
        .clone()
        .start_container(podstart::proto::v1::StartContainerRequest {
            pod_uid: "vol-5".into(),
            container: Some(debug),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let events = crate::common::collect(stream).await;
    let ids = started_ids(&events);
    let config = h.sim.container_config(&ids[0]).unwrap();
    let conf = h.volume_root.join("vol-5/conf").display().to_string();
    assert!(
        config
            .mounts
            .iter()
            .any(|m| m.container_path == "/conf" && m.host_path == conf && m.readonly),
        "{:?}",
        config.mounts
    );
    h.stop("vol-5").await.unwrap();
}

#[tokio::test]
async fn recovery_keeps_config_files_the_stored_request_does_not_carry() {
    use podstart::sim::Fault;
    let h = Harness::new().await;
    // The first podstart never hears back from StartContainer: its start
    // stops after the volumes are set up and the container is created.
    h.sim.faults().set(
        "StartContainer",
        Fault {
            hang: true,
            ..Default::default()
        },
    );
    let first = {
        let client = h.client.clone();
        tokio::spawn(async move {
            let req = request(volume_pod("vol-6"));
            let mut stream = client.clone().start_pod(req).await.unwrap().into_inner();
            while let Ok(Some(_)) = stream.message().await {}
        })
    };
    let file = h.volume_root.join("vol-6/conf/app.properties");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_to_string(&file).ok().as_deref() != Some("color=blue") {
        assert!(std::time::Instant::now() < deadline, "the volume is set up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.until_hung("StartContainer", 1).await;
    // The first podstart is gone.
    h.starter.cancel_all();
    first.abort();
    h.sim.faults().clear_all();

    let next = h.restarted_starter();
    let recovered = next.recover().await.unwrap();
    assert_eq!(recovered.started, 1, "{recovered:?}");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "color=blue",
        "the files stay as the first start wrote them"
    );
    next.cancel_all();
}
