//! Registry credentials against the simulated runtime: tried in the
//! keyring's order until one works, and never shown — not in events, the
//! log (captured at TRACE) or metrics. The capture is this test's
//! thread-local subscriber: other tests in the binary never write to it,
//! and every task the harness spawns runs on this test's current-thread
//! runtime, so it sees every line of this test.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use crate::common::*;
use podstart::proto::v1::{
    PullPolicy, RegistryCredential, StartEvent, StartPodRequest, start_event::Payload,
};
use podstart::sim::SimConfig;

fn image_container(name: &str, image: &str) -> podstart::proto::v1::Container {
    let mut c = container(name);
    c.image = image.to_string();
    c.set_image_pull_policy(PullPolicy::IfNotPresent);
    c
}

fn failure(events: &[StartEvent]) -> String {
    match terminal(events) {
        Payload::PodFailed(f) => f.reason.clone(),
        other => panic!("expected PodFailed, got {other:?}"),
    }
}

/// A writer shared with the test, for the log.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PASSWORD: &str = "s3cr3t-Pa55w0rd";
const WRONG: &str = "wr0ng-Pa55w0rd";

#[tokio::test]
async fn credentials_are_tried_in_order_and_never_shown() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::with_sim_config(
        SimConfig {
            registry_credentials: Some(("lab".into(), PASSWORD.into())),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let image = "registry.test:5402/needs-auth/app:1";
    let cred = |server: &str, password: &str| RegistryCredential {
        server: server.into(),
        username: "lab".into(),
        password: password.into(),
        ..Default::default()
    };
    let with_creds = |uid: &str, creds: Vec<RegistryCredential>| StartPodRequest {
        credentials: creds,
        ..request(pod("private", uid, vec![image_container("app", image)]))
    };

    // Wrong password only: the auth reason, and the password nowhere.
    let wrong = h
        .start(with_creds(
            "uid-wrong",
            vec![cred("registry.test:5402", WRONG)],
        ))
        .await
        .unwrap();
    assert_eq!(failure(&wrong), "ErrImagePullUnauthorized");
    // The failed pod keeps its sandbox, and with it its name: stopped, the
    // name may start again under a new uid.
    h.stop("uid-wrong").await.unwrap();
    // The most specific credential first (the wrong one), then the host-wide one.
    let right = h
        .start(with_creds(
            "uid-right",
            vec![
                cred("registry.test:5402", PASSWORD),
                cred("registry.test:5402/needs-auth", WRONG),
                cred("other.test", WRONG),
            ],
        ))
        .await
        .unwrap();
    assert!(matches!(terminal(&right), Payload::PodStarted(_)));
    assert_eq!(h.sim.calls("PullImage"), 3, "1 + (wrong, right)");

    let metrics = h.metrics.encode();
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("401 Unauthorized"),
        "the failure is logged: {logged}"
    );
    for secret in [PASSWORD, WRONG] {
        for e in wrong.iter().chain(&right) {
            assert!(!format!("{e:?}").contains(secret), "event: {e:?}");
        }
        assert!(!logged.contains(secret), "log shows a password");
        assert!(!metrics.contains(secret), "metrics show a password");
    }
}
