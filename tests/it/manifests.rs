//! The manifest suite: every `tests/manifests/*.yaml` (Pods written as the
//! Kubernetes documentation writes them, with their ConfigMaps and Secrets)
//! run through `podstart run` against `podstart serve` on the simulated
//! runtime, each to PodStarted; every `tests/manifests/refused/*.yaml`
//! refused before anything is sent, with each `# expect:` line of the file
//! in the message; and the identity of a manifest's pod across `run`,
//! `get` and `stop`.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::process::podstart_bin;
use crate::serve::serve_with;

fn podstart(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(podstart_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests")
}

/// The JSON events of a `-o json` run.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn every_manifest_of_the_suite_starts_on_the_sim() {
    let files = yaml_files(&suite());
    assert!(files.len() >= 30, "{} manifests", files.len());
    // The default policy's baseline level, with the one host directory the
    // suite's hostPath manifest names.
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        "rules:\n  - identities: [\"unix:uid=0\"]\n    namespaces: [\"*\"]\n    \
         verbs: [start, stop, read, watch]\n    podSecurity: baseline\n    \
         hostPaths: [/tmp/podstart-manifest-suite]\n",
    )
    .unwrap();
    let serve = serve_with("sim", &["--authz-policy", policy.path().to_str().unwrap()]).await;
    let endpoint = format!("unix://{}", serve.socket.display());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let (code, stdout, stderr) = podstart(&[
            "--endpoint",
            &endpoint,
            "run",
            "-o",
            "json",
            file.to_str().unwrap(),
        ]);
        let events = events(&stdout);
        let last = events.last().cloned().unwrap_or(Value::Null);
        if code != 0 || last["reason"] != "PodStarted" || last["payload"]["pod_started"].is_null() {
            failures.push(format!(
                "{name}: exit {code}; last event {last}; stderr {stderr}"
            ));
        }
        if let Some(e) = events.iter().find(|e| e["kind"] == "unspecified") {
            failures.push(format!("{name}: an event of kind unspecified: {e}"));
        }
        // Stopped again: its volumes (tmpfs ones too) go with it.
        let (code, _, stderr) =
            podstart(&["--endpoint", &endpoint, "stop", file.to_str().unwrap()]);
        if code != 0 {
            failures.push(format!("{name}: stop exit {code}; stderr {stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_refused_manifest_names_each_unsupported_field() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", dir.path().join("none.sock").display());
    let files = yaml_files(&suite().join("refused"));
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no # expect: line",
            file.display()
        );
        let (code, _, stderr) = podstart(&["--endpoint", &endpoint, "run", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {stderr}", file.display());
        for want in expected {
            assert!(
                stderr.lines().any(|line| line.contains(want)),
                "{}: {want:?} not in {stderr}",
                file.display()
            );
        }
        assert!(
            !stderr.contains("cannot connect"),
            "refused before connecting: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_manifest_run_twice_is_one_pod_that_get_and_stop_find() {
    let serve = serve_with("sim", &[]).await;
    let endpoint = format!("unix://{}", serve.socket.display());
    let file = suite().join("01-nginx.yaml");
    let file = file.to_str().unwrap();

    let (code, stdout, stderr) = podstart(&["--endpoint", &endpoint, "run", "-o", "json", file]);
    assert_eq!(code, 0, "{stderr}");
    let first = events(&stdout);
    let uid = first.last().unwrap()["pod_uid"].clone();
    assert_eq!(
        first.last().unwrap()["payload"]["pod_started"]["already_running"],
        false
    );

    let (code, stdout, stderr) = podstart(&["--endpoint", &endpoint, "run", "-o", "json", file]);
    assert_eq!(code, 0, "{stderr}");
    let second = events(&stdout);
    let last = second.last().unwrap();
    assert_eq!(last["pod_uid"], uid, "{stdout}");
    assert_eq!(
        last["payload"]["pod_started"]["already_running"], true,
        "{stdout}"
    );

    let (code, stdout, stderr) = podstart(&["--endpoint", &endpoint, "ls", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one pod: {stdout}");

    let (code, stdout, stderr) =
        podstart(&["--endpoint", &endpoint, "get", "-o", "json", "-f", file]);
    assert_eq!(code, 0, "{stderr}");
    let pod: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(pod["uid"], uid, "{stdout}");

    let (code, stdout, stderr) = podstart(&["--endpoint", &endpoint, "stop", "-o", "json", file]);
    assert_eq!(code, 0, "{stderr}");
    let stopped = events(&stdout);
    assert!(
        stopped.last().unwrap()["payload"]["pod_stopped"].is_object(),
        "{stdout}"
    );
    assert_eq!(stopped.last().unwrap()["pod_uid"], uid);
    let (_, stdout, _) = podstart(&["--endpoint", &endpoint, "ls", "-o", "json"]);
    assert_eq!(stdout.lines().count(), 0, "no pod left: {stdout}");
}

#[tokio::test]
async fn documents_of_several_files_are_taken_together() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: split}\nspec:\n  containers:\n  - name: a\n    \
         image: registry.example/podstart/busybox:1.36\n    envFrom: [{configMapRef: {name: split-config}}]\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: split-config}\ndata: {MODE: fast}\n",
    )
    .unwrap();
    let (pod, config) = (pod.to_str().unwrap(), config.to_str().unwrap());

    let absent = format!("unix://{}", dir.path().join("none.sock").display());
    let (code, _, stderr) = podstart(&["--endpoint", &absent, "run", "-f", pod]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("configmap \"split-config\" not found"),
        "{stderr}"
    );

    let serve = serve_with("sim", &[]).await;
    let endpoint = format!("unix://{}", serve.socket.display());
    let (code, stdout, stderr) = podstart(&[
        "--endpoint",
        &endpoint,
        "run",
        "-o",
        "json",
        "-f",
        pod,
        "-f",
        config,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        events(&stdout).last().unwrap()["reason"],
        "PodStarted",
        "{stdout}"
    );
}
