//! Pod volumes on a real containerd: an emptyDir an app container writes
//! and its sidecar reads, a config file and a downward API labels file seen
//! inside the container, and a Memory emptyDir whose size limit stops a
//! write beyond it; StopPod removes them all.
use std::{collections::HashMap, time::Duration};

use podstart::proto::v1::{
    ConfigFile, ConfigVolume, ContainerRestartPolicy, DownwardApiFile, DownwardApiVolume,
    EmptyDirVolume, FieldSource, Mount, StartEvent, StorageMedium, Volume, field_source,
    start_event::Payload, volume::Source,
};

use super::{Daemon, container, lab, pod, summary, unique, wait_for_text};

fn volume(name: &str, source: Source) -> Volume {
    Volume {
        name: name.into(),
        source: Some(source),
    }
}

fn mount(volume: &str, at: &str) -> Mount {
    Mount {
        container_path: at.into(),
        volume_name: volume.into(),
        ..Default::default()
    }
}

fn container_id(events: &[StartEvent], name: &str) -> String {
    let Some(Payload::PodStarted(started)) = &events.last().unwrap().payload else {
        panic!("pod did not start: {:#?}", summary(events));
    };
    started
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .container_id
        .clone()
}

/// `argv` in the container: exit code and output (stdout then stderr).
async fn exec(d: &Daemon, id: &str, argv: &[&str]) -> (i32, String) {
    let out = d
        .cri
        .exec_sync(
            id,
            argv.iter().map(|a| a.to_string()).collect(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.exit_code, text)
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_an_empty_dir_written_by_the_app_is_read_by_its_sidecar() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("shared");
    let mut sidecar = container(
        &lab,
        "reader",
        "while [ ! -s /shared/msg ]; do sleep 0.1; done; echo read:$(cat /shared/msg); \
         exec sleep 3600",
    );
    sidecar.restart_policy = ContainerRestartPolicy::Always as i32;
    sidecar.mounts = vec![mount("shared", "/shared")];
    let mut app = container(
        &lab,
        "writer",
        "echo hello-from-app > /shared/msg; exec sleep 3600",
    );
    app.mounts = vec![mount("shared", "/shared")];
    let mut spec = pod(&name, &uid, vec![app]);
    spec.init_containers = vec![sidecar];
    spec.volumes = vec![volume(
        "shared",
        Source::EmptyDir(EmptyDirVolume::default()),
    )];

    let events = d.start_pod(spec).await;
    container_id(&events, "writer");
    let log = d.log_root.join(format!("e2e_{name}_{uid}/reader/0.log"));
    let text = wait_for_text(&log, "read:hello-from-app").await;
    assert!(text.contains("read:hello-from-app"), "{text:?}");
    assert!(d.volume_root.join(&uid).join("shared/msg").is_file());

    d.stop_pod(&uid).await;
    assert_eq!(d.leftovers(&uid).await, (0, 0));
    assert!(
        !d.volume_root.join(&uid).exists(),
        "the volumes are removed"
    );
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_config_and_downward_api_files_are_visible_read_only() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("files");
    let mut app = container(&lab, "app", "exec sleep 3600");
    app.mounts = vec![mount("conf", "/etc/app"), mount("info", "/etc/podinfo")];
    let mut spec = pod(&name, &uid, vec![app]);
    spec.metadata.as_mut().unwrap().labels = HashMap::from([
        ("app".into(), "web".into()),
        ("tier".into(), "front".into()),
    ]);
    spec.volumes = vec![
        volume(
            "conf",
            Source::Config(ConfigVolume {
                files: vec![ConfigFile {
                    path: "app.properties".into(),
                    data: b"color=blue\n".to_vec(),
                    mode: None,
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
    let events = d.start_pod(spec).await;
    let id = container_id(&events, "app");
    assert_eq!(
        exec(&d, &id, &["cat", "/etc/app/app.properties"]).await,
        (0, "color=blue\n".into())
    );
    assert_eq!(
        exec(&d, &id, &["cat", "/etc/podinfo/labels"]).await,
        (0, "app=\"web\"\ntier=\"front\"".into())
    );
    let (code, out) = exec(&d, &id, &["sh", "-c", "echo x > /etc/app/new"]).await;
    assert_ne!(code, 0, "a config volume is read-only: {out}");

    d.stop_pod(&uid).await;
    assert!(!d.volume_root.join(&uid).exists());
}

#[tokio::test]
#[ignore = "needs the containerd lab: scripts/test.sh runs it"]
async fn e2e_a_memory_empty_dir_refuses_writes_beyond_its_size_limit() {
    let Some(lab) = lab() else { return };
    let d = Daemon::start(&lab).await;
    let (name, uid) = unique("memdir");
    let mut app = container(&lab, "app", "exec sleep 3600");
    app.mounts = vec![mount("scratch", "/scratch")];
    let mut spec = pod(&name, &uid, vec![app]);
    spec.volumes = vec![volume(
        "scratch",
        Source::EmptyDir(EmptyDirVolume {
            medium: StorageMedium::Memory as i32,
            size_limit_bytes: Some(1 << 20),
        }),
    )];
    let events = d.start_pod(spec).await;
    let id = container_id(&events, "app");
    let (code, out) = exec(
        &d,
        &id,
        &[
            "dd",
            "if=/dev/zero",
            "of=/scratch/small",
            "bs=1024",
            "count=512",
        ],
    )
    .await;
    assert_eq!(code, 0, "half the limit fits: {out}");
    let (code, out) = exec(
        &d,
        &id,
        &[
            "dd",
            "if=/dev/zero",
            "of=/scratch/big",
            "bs=1024",
            "count=2048",
        ],
    )
    .await;
    assert_ne!(code, 0, "2 MiB do not fit in 1 MiB: {out}");
    assert!(out.contains("No space left"), "{out}");

    d.stop_pod(&uid).await;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&uid), "the tmpfs is unmounted");
    assert!(!d.volume_root.join(&uid).exists());
}
