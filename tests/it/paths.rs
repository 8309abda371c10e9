//! Paths made from a request stay inside their roots: a pod uid such as
//! `..` creates nothing and deletes nothing outside the state and log
//! roots, whether the API's validation is there or not (the flow is driven
//! directly), and StopPod deletes only the files podstart made.
use std::{
    fs,
    path::{Path, PathBuf},
};

use podstart::proto::v1::{PodMetadata, start_event::Payload};
use podstart::spec::{labels, log_directory, pod_sandbox_config};
use tonic::Code;

use crate::common::{Harness, container, pod, reasons, terminal};
use crate::direct;

/// Files beside and inside the roots that no pod of these tests owns,
/// each laid out as podstart lays out its own.
struct Sentinels(Vec<PathBuf>);

impl Sentinels {
    fn plant(base: &Path) -> Sentinels {
        let files = [
            "sentinel",
            "containers/app/abcdef12",
            "app/0.log",
            "state/other/containers/app/abcdef12",
            "pods/default_other_other/app/0.log",
        ]
        .iter()
        .map(|f| base.join(f))
        .collect::<Vec<_>>();
        for f in &files {
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, "keep").unwrap();
        }
        Sentinels(files)
    }

    fn intact(&self) {
        for f in &self.0 {
            assert_eq!(
                fs::read_to_string(f).ok().as_deref(),
                Some("keep"),
                "{} must survive",
                f.display()
            );
        }
    }
}

fn meta(name: &str, uid: &str) -> PodMetadata {
    PodMetadata {
        name: name.into(),
        namespace: "default".into(),
        uid: uid.into(),
        ..Default::default()
    }
}

fn failed(events: &[podstart::proto::v1::StartEvent]) -> (String, Code, String) {
    match terminal(events) {
        Payload::PodFailed(f) => (f.reason.clone(), Code::from(f.code), f.message.clone()),
        other => panic!("expected PodFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dot_dot_uid_touches_nothing_outside_the_roots() {
    let h = Harness::new().await;
    let node = tempfile::tempdir().unwrap();
    let base = node.path();
    let (state_root, log_root) = (base.join("state"), base.join("pods"));
    let sentinels = Sentinels::plant(base);
    let starter = direct::starter(&h, &state_root, &log_root);

    for uid in ["..", ".", "../..", "../state", "a/../..", "/", ""] {
        // StartPod: refused before anything is made or called.
        let events = direct::start(&starter, pod("web", uid, vec![container("app")])).await;
        let (reason, code, message) = failed(&events);
        assert_eq!(
            (reason.as_str(), code),
            ("InvalidSpec", Code::InvalidArgument),
            "{uid:?}: {message}"
        );
        assert!(
            message.contains("cannot name a directory"),
            "{uid:?}: {message}"
        );
    }
    assert_eq!(h.sim.calls("RunPodSandbox"), 0);
    assert_eq!(h.sim.calls("PullImage"), 0);
    assert_eq!(h.sim.calls("CreateContainer"), 0);
    sentinels.intact();

    for uid in ["..", ".", "../..", "a/../.."] {
        // A sandbox carrying the uid, as a runtime may hold one podstart did
        // not start (another client, an older podstart): StopPod removes it
        // and deletes no file.
        let m = meta("web", uid);
        let spec = pod("web", uid, vec![]);
        let mut config = pod_sandbox_config(&spec, &log_root.join("elsewhere"));
        config.labels = labels::pod_labels(&m);
        starter.cri().run_pod_sandbox(config, "").await.unwrap();
        let events = direct::stop(&starter, m).await;
        assert!(
            matches!(terminal(&events), Payload::PodStopped(_)),
            "{uid:?}: {:?}",
            reasons(&events)
        );
        sentinels.intact();
    }
    assert_eq!(h.sim.sandbox_count(), 0);
    assert!(state_root.join("other").is_dir() && log_root.is_dir());
}

#[tokio::test]
async fn stop_pod_deletes_only_what_podstart_made() {
    let h = Harness::new().await;
    let node = tempfile::tempdir().unwrap();
    let base = node.path();
    let (state_root, log_root) = (base.join("state"), base.join("pods"));
    let sentinels = Sentinels::plant(base);
    let starter = direct::starter(&h, &state_root, &log_root);

    let events = direct::start(&starter, pod("web", "uid-web", vec![container("app")])).await;
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:?}",
        reasons(&events)
    );
    let log_dir = log_directory(&log_root, &meta("web", "uid-web")).unwrap();
    let pod_state = state_root.join("uid-web");
    assert!(pod_state.join("containers/app").is_dir());
    // Files podstart did not make, in the pod's own directories.
    fs::create_dir_all(log_dir.join("app")).unwrap();
    fs::write(log_dir.join("app/0.log"), "a log").unwrap();
    fs::write(log_dir.join("app/0.log.20250101-000000"), "rotated").unwrap();
    fs::write(log_dir.join("README"), "not a log").unwrap();
    fs::write(pod_state.join("containers/app/notes"), "not a message").unwrap();

    let events = direct::stop(&starter, meta("web", "uid-web")).await;
    assert!(
        matches!(terminal(&events), Payload::PodStopped(_)),
        "{:?}",
        reasons(&events)
    );
    let kept = events
        .iter()
        .find(|e| e.reason == "LogsKept")
        .expect("LogsKept");
    assert!(kept.message.contains("README"), "{}", kept.message);
    assert!(!log_dir.join("app").exists(), "the container's logs go");
    assert!(log_dir.join("README").exists());
    assert!(pod_state.join("containers/app/notes").exists());
    let left: Vec<_> = fs::read_dir(pod_state.join("containers/app"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "only the stranger is left");
    sentinels.intact();

    // Once the strangers are gone, the directories go too.
    fs::remove_file(log_dir.join("README")).unwrap();
    fs::remove_file(pod_state.join("containers/app/notes")).unwrap();
    let m = meta("web", "uid-web");
    let spec = pod("web", "uid-web", vec![]);
    let mut config = pod_sandbox_config(&spec, &log_dir);
    config.labels = labels::pod_labels(&m);
    starter.cri().run_pod_sandbox(config, "").await.unwrap();
    let events = direct::stop(&starter, m).await;
    assert!(
        events.iter().any(|e| e.reason == "LogsRemoved"),
        "{:?}",
        reasons(&events)
    );
    assert!(!log_dir.exists() && !pod_state.exists());
    sentinels.intact();
}

#[tokio::test]
async fn a_link_at_a_pod_directory_is_never_followed() {
    let h = Harness::new().await;
    let node = tempfile::tempdir().unwrap();
    let base = node.path();
    let (state_root, log_root) = (base.join("state"), base.join("pods"));
    let sentinels = Sentinels::plant(base);
    fs::create_dir_all(&state_root).unwrap();
    fs::create_dir_all(&log_root).unwrap();
    let m = meta("web", "uid-link");
    // Both pod directories are links to where the sentinels are.
    std::os::unix::fs::symlink(base, state_root.join("uid-link")).unwrap();
    std::os::unix::fs::symlink(base, log_directory(&log_root, &m).unwrap()).unwrap();
    let starter = direct::starter(&h, &state_root, &log_root);

    let events = direct::start(&starter, pod("web", "uid-link", vec![container("app")])).await;
    let (reason, code, message) = failed(&events);
    assert_eq!(
        (reason.as_str(), code),
        ("CreatePodSandboxError", Code::FailedPrecondition),
        "{message}"
    );
    assert!(message.contains("is not inside"), "{message}");
    assert_eq!(h.sim.calls("RunPodSandbox"), 0);

    let spec = pod("web", "uid-link", vec![]);
    let mut config = pod_sandbox_config(&spec, &log_root.join("x"));
    config.labels = labels::pod_labels(&m);
    starter.cri().run_pod_sandbox(config, "").await.unwrap();
    let events = direct::stop(&starter, m).await;
    let (reason, code, _) = failed(&events);
    assert_eq!(
        (reason.as_str(), code),
        ("RemoveLogDirectoryError", Code::FailedPrecondition)
    );
    assert_eq!(
        h.sim.sandbox_count(),
        0,
        "the pod itself is stopped and removed"
    );
    sentinels.intact();
    assert!(
        fs::symlink_metadata(state_root.join("uid-link"))
            .unwrap()
            .is_symlink()
    );
}
