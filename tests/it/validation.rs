//! Bad input: InvalidArgument naming the field and the rule, before any
//! call reaches the runtime.

use crate::common::*;
use podstart::proto::v1::{Mount, StartPodRequest};
use tonic::Code;

async fn rejected(h: &Harness, req: StartPodRequest) -> String {
    let status = h.start(req).await.expect_err("request must be rejected");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    status.message().to_string()
}

fn mount(container_path: &str, host_path: &str) -> Mount {
    Mount {
        container_path: container_path.into(),
        host_path: host_path.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_bad_field_is_named_and_nothing_reaches_the_runtime() {
    let h = Harness::new().await;
    // What the harness's recovery at start-up called.
    let at_start = h.sim.calls("ListPodSandbox");
    let cases: Vec<(&str, StartPodRequest, &str)> = vec![
        (
            "name not DNS-1123",
            request(pod("Bad_Name", "uid-1", vec![container("app")])),
            "pod.metadata.name",
        ),
        (
            "empty image",
            request(pod(
                "ok",
                "uid-2",
                vec![{
                    let mut c = container("app");
                    c.image.clear();
                    c
                }],
            )),
            "pod.containers[0].image",
        ),
        (
            "duplicate container names",
            request(pod("ok", "uid-3", vec![container("app"), container("app")])),
            "pod.containers[1].name",
        ),
        (
            "relative mount path",
            request(pod(
                "ok",
                "uid-4",
                vec![{
                    let mut c = container("app");
                    c.mounts = vec![mount("data", "/srv/data")];
                    c
                }],
            )),
            "pod.containers[0].mounts[0].container_path",
        ),
        (
            "'..' in a host path",
            request(pod(
                "ok",
                "uid-5",
                vec![{
                    let mut c = container("app");
                    c.mounts = vec![mount("/data", "/srv/../etc")];
                    c
                }],
            )),
            "pod.containers[0].mounts[0].host_path",
        ),
        (
            "no app container",
            request(pod("ok", "uid-6", vec![])),
            "pod.containers",
        ),
        (
            "invalid image reference",
            request(pod(
                "ok",
                "uid-7",
                vec![{
                    let mut c = container("app");
                    c.image = "Registry.Test/UPPER:tag".into();
                    c
                }],
            )),
            "pod.containers[0].image",
        ),
        ("no pod at all", StartPodRequest::default(), "pod"),
    ];
    for (what, req, field) in cases {
        let message = rejected(&h, req).await;
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{what}: message {message:?} should start with the field {field:?}"
        );
    }
    assert_eq!(h.sim.calls("RunPodSandbox"), 0);
    assert_eq!(h.sim.calls("ListPodSandbox"), at_start);
    assert_eq!(h.sim.calls("ImageStatus"), 0);
}
