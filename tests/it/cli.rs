//! The client commands as a user runs them: bad manifests are refused
//! before anything is sent, naming the field; an absent daemon is reported.
use std::process::Command;

use crate::process::podstart_bin;

fn podstart(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(podstart_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn malformed_manifests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", dir.path().join("none.sock").display());
    let cases = [
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    envFrom: [{configMapRef: {name: x}}]\n",
            "spec.containers[0].envFrom[0].configMapRef: configmap \"x\" not found",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources: {limits: {memory: lots}}\n",
            "spec.containers[0].resources.limits.memory",
        ),
        ("kind: Pod\nmetadata: [", "line"),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
            "Service",
        ),
    ];
    for (text, want) in cases {
        let file = dir.path().join("pod.yaml");
        std::fs::write(&file, text).unwrap();
        let (code, _, stderr) = podstart(&["--endpoint", &endpoint, "run", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(want), "{want:?} not in {stderr:?}");
        assert!(
            !stderr.contains("cannot connect"),
            "refused before connecting: {stderr}"
        );
    }
}

#[test]
fn an_absent_daemon_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", dir.path().join("none.sock").display());
    let (code, _, stderr) = podstart(&["--endpoint", &endpoint, "ls"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot connect to unix://"), "{stderr}");
}

#[test]
fn example_manifests_convert_without_errors() {
    for example in [
        "pod.yaml",
        "init-fails.yaml",
        "host-path.yaml",
        "sim-pod.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(example);
        let manifest = podstart::cli::manifest::load_manifest(&path)
            .unwrap_or_else(|e| panic!("{example}: {e}"));
        assert!(
            manifest.warnings.is_empty(),
            "{example}: {:?}",
            manifest.warnings
        );
        podstart::spec::validate_start_pod(&manifest.request)
            .unwrap_or_else(|e| panic!("{example}: {e}"));
    }
}
