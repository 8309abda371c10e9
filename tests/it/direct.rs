//! A `Starter` driven without the API: as a podstart restarted beside a
//! running node sees it (fresh in-memory state, the same runtime), or with
//! requests the API's validation would refuse, so the flow's own defences
//! are what is tested.
use std::path::Path;

use podstart::cri::{Cri, CriSettings};
use podstart::proto::v1::{PodMetadata, PodSpec, StartEvent, StartPodRequest};
use podstart::start::{EventSink, FlowConfig, Parts, Starter};
use podstart::telemetry::Metrics;
use tokio::sync::{broadcast, mpsc};

use crate::common::Harness;

/// A second podstart on the harness's runtime, with its own roots.
pub(crate) fn starter(h: &Harness, state_root: &Path, log_root: &Path) -> Starter {
    let metrics = Metrics::new().unwrap();
    let cri = Cri::new(
        &h.runtime,
        &h.runtime,
        CriSettings::default(),
        metrics.clone(),
    )
    .unwrap();
    Starter::new(Parts::with_defaults(
        cri,
        FlowConfig {
            pod_log_root: log_root.to_path_buf(),
            pod_state_root: state_root.to_path_buf(),
            ..FlowConfig::default()
        },
        metrics,
    ))
}

/// A sink for `meta` and the events it received so far.
fn sink(meta: &PodMetadata) -> (EventSink, mpsc::Receiver<Result<StartEvent, tonic::Status>>) {
    let (tx, rx) = mpsc::channel(1024);
    let (bus, _) = broadcast::channel(1024);
    (EventSink::new(meta, Some(tx), bus), rx)
}

fn drain(mut rx: mpsc::Receiver<Result<StartEvent, tonic::Status>>) -> Vec<StartEvent> {
    let mut events = Vec::new();
    while let Ok(Ok(e)) = rx.try_recv() {
        events.push(e);
    }
    assert!(
        events.last().is_some_and(StartEvent::is_terminal),
        "a terminal event last: {events:#?}"
    );
    events
}

/// StartPod of `pod`, straight into the flow.
pub(crate) async fn start(s: &Starter, pod: PodSpec) -> Vec<StartEvent> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let (sink, rx) = sink(&meta);
    let req = StartPodRequest {
        pod: Some(pod),
        ..Default::default()
    };
    s.start_pod(req, sink, None).await;
    drain(rx)
}

/// StopPod of `meta`, straight into the flow (no look-up first).
pub(crate) async fn stop(s: &Starter, meta: PodMetadata) -> Vec<StartEvent> {
    let (sink, rx) = sink(&meta);
    s.stop_pod(meta, Some(0), sink).await;
    drain(rx)
}
