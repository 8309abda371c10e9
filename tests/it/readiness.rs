//! Readiness that follows what the CRI calls see, not only CRI Status:
//! `podstart serve` against a simulated runtime served here, whose faults
//! the test injects (calls that hang until their deadline, a connection
//! whose every slot is taken) and then clears.
use std::time::Instant;

use crate::process::wait_for;
use crate::serve::{Serve, WAIT, health, http_body, http_status, serve_with};
use podstart::endpoint::{Address, Peer};
use podstart::proto::v1::{ListPodsRequest, pod_starter_client::PodStarterClient};
use podstart::sim::{Fault, SimConfig, SimRuntime};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;

/// A simulated runtime on its own socket, stopped when dropped.
struct Runtime {
    sim: SimRuntime,
    endpoint: String,
    stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

fn runtime() -> Runtime {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("runtime.sock");
    let sim = SimRuntime::new(SimConfig::default());
    let listener = SimRuntime::bind_unix(&sock).unwrap();
    let token = CancellationToken::new();
    tokio::spawn({
        let (sim, token) = (sim.clone(), token.clone());
        async move {
            let _ = sim
                .serve_unix_listener(listener, token.cancelled_owned())
                .await;
        }
    });
    Runtime {
        sim,
        endpoint: format!("unix://{}", sock.display()),
        stop: token.drop_guard(),
        _dir: dir,
    }
}

async fn client(s: &Serve) -> PodStarterClient<tonic::transport::Channel> {
    let channel = podstart::endpoint::connect(&Address::Unix(s.socket.clone()), Peer::Podstart)
        .await
        .unwrap();
    PodStarterClient::new(channel)
}

/// Waits until `/readyz` answers `code` and returns its body.
async fn readyz_becomes(s: &Serve, code: u16, what: &str) -> String {
    let addr = s.metrics.clone();
    wait_for(|| http_status(&addr, "/readyz") == code, what, WAIT).await;
    http_body(&s.metrics, "/readyz")
}

#[tokio::test]
async fn calls_timing_out_make_it_not_ready_until_they_are_answered_again() {
    let rt = runtime();
    let s = serve_with(
        &rt.endpoint,
        &[
            "--runtime-request-timeout",
            "300ms",
            "--unready-after-timeouts",
            "3",
        ],
    )
    .await;
    readyz_becomes(&s, 200, "readiness").await;
    assert_eq!(health(&s.socket).await, ServingStatus::Serving);

    // Status still answers; ListPodSandbox, which ListPods makes, hangs.
    rt.sim.faults().set(
        "ListPodSandbox",
        Fault {
            hang: true,
            ..Fault::default()
        },
    );
    let mut api = client(&s).await;
    let since = Instant::now();
    api.list_pods(ListPodsRequest::default()).await.unwrap_err();
    let body = readyz_becomes(&s, 503, "not ready while calls time out").await;
    eprintln!(
        "readiness dropped {:?} after the first timed-out call began",
        since.elapsed()
    );
    assert!(
        body.starts_with("not ready: CRI list_podsandbox calls timing out ("),
        "{body}"
    );
    assert_eq!(health(&s.socket).await, ServingStatus::NotServing);
    let text = http_body(&s.metrics, "/metrics");
    assert!(text.contains("podstart_runtime_ready 0"), "{text}");
    assert!(
        text.contains("podstart_runtime_unready{reason=\"timeouts\"} 1"),
        "{text}"
    );

    rt.sim.faults().clear_all();
    let since = Instant::now();
    api.list_pods(ListPodsRequest::default()).await.unwrap();
    readyz_becomes(&s, 200, "ready again once the calls are answered").await;
    eprintln!(
        "readiness came back {:?} after the first answered call",
        since.elapsed()
    );
    assert_eq!(health(&s.socket).await, ServingStatus::Serving);
    let text = http_body(&s.metrics, "/metrics");
    assert!(
        text.contains("podstart_runtime_unready{reason=\"timeouts\"} 0"),
        "{text}"
    );
    drop(rt.stop);
}

#[tokio::test]
async fn a_saturated_connection_makes_it_not_ready_until_slots_free_up() {
    let rt = runtime();
    let s = serve_with(
        &rt.endpoint,
        &[
            "--runtime-request-timeout",
            "6s",
            "--runtime-max-concurrency",
            "2",
            "--unready-after-slot-wait",
            "500ms",
        ],
    )
    .await;
    readyz_becomes(&s, 200, "readiness").await;

    // Two calls hold both slots; the others (and the probe) wait.
    rt.sim.faults().set(
        "ListPodSandbox",
        Fault {
            hang: true,
            ..Fault::default()
        },
    );
    let api = client(&s).await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let mut api = api.clone();
            tokio::spawn(async move { api.list_pods(ListPodsRequest::default()).await })
        })
        .collect();
    let since = Instant::now();
    let body = readyz_becomes(&s, 503, "not ready while calls wait for a slot").await;
    eprintln!(
        "readiness dropped {:?} after the calls began",
        since.elapsed()
    );
    assert!(
        body.starts_with("not ready: CRI connection saturated: "),
        "{body}"
    );
    assert_eq!(health(&s.socket).await, ServingStatus::NotServing);
    assert!(
        http_body(&s.metrics, "/metrics")
            .contains("podstart_runtime_unready{reason=\"saturated\"} 1")
    );

    rt.sim.faults().clear_all();
    for call in calls {
        // Each either timed out while the fault held or was answered after.
        let _ = call.await.unwrap();
    }
    let since = Instant::now();
    readyz_becomes(&s, 200, "ready again once slots are free").await;
    eprintln!(
        "readiness came back {:?} after the waits ended",
        since.elapsed()
    );
    assert_eq!(health(&s.socket).await, ServingStatus::Serving);
    drop(rt.stop);
}
