//! StartEvent construction and delivery. Every event goes to the caller's
//! stream (while the caller listens) and to the node-wide bus that
//! WatchEvents reads.
use std::{
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{FutureExt, Stream, StreamExt};
use k8s_cri::v1 as cri;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{StartError, replay::Replay, termination};
use crate::proto::v1::{
    ContainerExit, ContainerKind, EventType, PodFailed, PodMetadata, StartEvent, Step,
    start_event::Payload,
};
use crate::telemetry::Metrics;

/// Where a request's events go. Clones share one audience: the flow never
/// waits on it (see `Audience`).
#[derive(Clone)]
pub struct EventSink {
    uid: String,
    name: String,
    namespace: String,
    audience: Option<Arc<Audience>>,
    bus: broadcast::Sender<StartEvent>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("uid", &self.uid)
            .field("caller", &self.audience.is_some())
            .finish_non_exhaustive()
    }
}

/// The callers of one request: the one that made it and those that
/// attached to it later (`EventSink::attach`), and the record of its
/// events so far for the next attacher (`Replay`). Every event goes to
/// every caller at once, under one lock, so an attacher's replay and the
/// live events that follow it neither overlap nor leave a gap.
struct Audience {
    state: Mutex<AudienceState>,
    metrics: Option<Metrics>,
}

struct AudienceState {
    /// The callers still listening.
    callers: Vec<Caller>,
    replay: Replay,
    terminal_sent: bool,
    /// Callers cut off for not reading: every later event is one more each
    /// of them did not get.
    cut_off: u64,
}

/// One caller's end of a request's events: a bounded buffer the flow
/// never waits on. When it fills (the caller does not read), progress
/// events are dropped first, once half of it is taken; a step event that
/// does not fit disconnects the caller (RESOURCE_EXHAUSTED after what it
/// was sent); the last slot is kept for the terminal event. After the
/// terminal event the caller gets nothing more, so its stream ends.
struct Caller {
    tx: mpsc::Sender<Result<StartEvent, Status>>,
    /// Ends the stream with a status after its buffered events.
    cut: Option<oneshot::Sender<Status>>,
}

/// What became of one event for one caller.
enum Delivered {
    /// In its buffer; it listens on.
    Sent,
    /// A progress event its filling buffer had no room for.
    DroppedProgress,
    /// The last event it gets: the terminal one, or it left.
    Done,
    /// Did not fit: the caller is cut off.
    CutOff,
}

/// What an event is to the caller's buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Progress,
    Step,
    Terminal,
}

/// `podstart_events_dropped_total` reasons.
const DROPPED_SLOW_READER: &str = "slow_reader";
const DROPPED_DISCONNECTED: &str = "disconnected";

impl Caller {
    fn new(
        buffer: usize,
    ) -> (
        Caller,
        impl Stream<Item = Result<StartEvent, Status>> + use<>,
    ) {
        let (tx, rx) = mpsc::channel(buffer.max(2));
        let (cut_tx, cut_rx) = oneshot::channel();
        let cut = futures::stream::once(cut_rx).filter_map(|r| async move { r.ok().map(Err) });
        let caller = Caller {
            tx,
            cut: Some(cut_tx),
        };
        (caller, ReceiverStream::new(rx).chain(cut))
    }

    /// Hands `event` to the caller's buffer without waiting.
    fn deliver(&mut self, event: StartEvent, kind: Kind, uid: &str) -> Delivered {
        let tx = &self.tx;
        if tx.is_closed() {
            tracing::debug!(pod_uid = %uid, "caller stopped listening; carrying on");
            return Delivered::Done;
        }
        // Free slots an event of this kind must leave for later ones.
        let keep = match kind {
            Kind::Progress => tx.max_capacity() / 2,
            Kind::Step => 1,
            Kind::Terminal => 0,
        };
        let fits = tx.capacity() > keep && tx.try_send(Ok(event)).is_ok();
        if !fits {
            if kind == Kind::Progress {
                return Delivered::DroppedProgress;
            }
            tracing::warn!(
                pod_uid = %uid,
                "caller is not reading its stream: disconnecting it; the request carries on"
            );
            if let Some(cut) = self.cut.take() {
                let _ = cut.send(Status::resource_exhausted(
                    "client is not reading its stream: disconnected; the request carries on \
                     (WatchEvents has every event)",
                ));
            }
            return Delivered::CutOff;
        }
        if kind == Kind::Terminal {
            // Nothing follows the terminal event: the stream ends.
            Delivered::Done
        } else {
            Delivered::Sent
        }
    }
}

impl Audience {
    fn new(callers: Vec<Caller>, metrics: Option<Metrics>) -> Audience {
        Audience {
            state: Mutex::new(AudienceState {
                callers,
                replay: Replay::default(),
                terminal_sent: false,
                cut_off: 0,
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, AudienceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dropped(&self, reason: &str, n: u64) {
        if let Some(m) = &self.metrics {
            for _ in 0..n {
                m.event_dropped(reason);
            }
        }
    }

    /// Hands `event` to every caller and to the record, without waiting.
    fn deliver(&self, event: StartEvent, kind: Kind, uid: &str) {
        let mut state = self.lock();
        if state.terminal_sent {
            // Nothing goes out after the terminal event.
            return;
        }
        match kind {
            Kind::Terminal => {
                state.terminal_sent = true;
                state.replay.end(event.clone());
            }
            Kind::Step => state.replay.record(event.clone()),
            Kind::Progress => {}
        }
        self.dropped(DROPPED_DISCONNECTED, state.cut_off);
        let AudienceState {
            callers, cut_off, ..
        } = &mut *state;
        callers.retain_mut(|caller| match caller.deliver(event.clone(), kind, uid) {
            Delivered::Sent => true,
            Delivered::DroppedProgress => {
                self.dropped(DROPPED_SLOW_READER, 1);
                true
            }
            Delivered::Done => false,
            Delivered::CutOff => {
                self.dropped(DROPPED_DISCONNECTED, 1);
                *cut_off += 1;
                false
            }
        });
    }

    /// A new caller: the events recorded so far (as many as half its
    /// buffer takes), the terminal event if it went out, else every event
    /// from now on.
    fn attach(
        &self,
        buffer: usize,
        uid: &str,
    ) -> impl Stream<Item = Result<StartEvent, Status>> + use<> {
        let (mut caller, stream) = Caller::new(buffer);
        let room = buffer.max(2) / 2;
        let mut state = self.lock();
        // Callers that went away are forgotten now, not at the next event
        // (a start can be silent for long, and callers may come and go).
        state.callers.retain(|c| !c.tx.is_closed());
        for event in state.replay.recent(room) {
            caller.deliver(event.clone(), Kind::Step, uid);
        }
        match state.replay.terminal() {
            Some(terminal) => {
                caller.deliver(terminal.clone(), Kind::Terminal, uid);
            }
            None => state.callers.push(caller),
        }
        stream
    }
}

impl EventSink {
    /// A sink whose caller, if any, reads `caller` (a buffer the flow
    /// never waits on; a full one ends the delivery, unannounced).
    pub fn new(
        pod: &PodMetadata,
        caller: Option<mpsc::Sender<Result<StartEvent, Status>>>,
        bus: broadcast::Sender<StartEvent>,
    ) -> EventSink {
        EventSink {
            uid: pod.uid.clone(),
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            audience: caller
                .map(|tx| Arc::new(Audience::new(vec![Caller { tx, cut: None }], None))),
            bus,
        }
    }

    /// A sink for a gRPC caller and the caller's response stream:
    /// `buffer` events at most wait for the caller; dropped events are
    /// counted in `metrics`. A caller that is disconnected reads what was
    /// buffered, then RESOURCE_EXHAUSTED.
    pub fn for_caller(
        pod: &PodMetadata,
        bus: broadcast::Sender<StartEvent>,
        buffer: usize,
        metrics: Metrics,
    ) -> (
        EventSink,
        impl Stream<Item = Result<StartEvent, Status>> + Send + use<>,
    ) {
        let (caller, stream) = Caller::new(buffer);
        let mut sink = EventSink::new(pod, None, bus);
        sink.audience = Some(Arc::new(Audience::new(vec![caller], Some(metrics))));
        (sink, stream)
    }

    /// Another caller of this sink's request, with the same bounds as the
    /// first: it gets the most recent events so far (at most half its
    /// buffer, see `replay`), then every event from now on, ending with
    /// the same terminal event — at once when that went out already.
    /// None for a sink without callers.
    pub fn attach(
        &self,
        buffer: usize,
    ) -> Option<impl Stream<Item = Result<StartEvent, Status>> + Send + use<>> {
        Some(self.audience.as_ref()?.attach(buffer, &self.uid))
    }

    fn stamp(&self, event: &mut StartEvent) {
        event.time_unix_nano = now_unix_nano();
        event.pod_uid.clone_from(&self.uid);
        event.pod_name.clone_from(&self.name);
        event.pod_namespace.clone_from(&self.namespace);
    }

    fn deliver(&self, event: StartEvent, kind: Kind) {
        // No receivers is the normal case for the bus.
        let _ = self.bus.send(event.clone());
        if let Some(audience) = &self.audience {
            audience.deliver(event, kind, &self.uid);
        }
    }

    /// Stamps the event with the time and the pod, then delivers it. A
    /// caller that went away, or does not read, does not stop the work:
    /// the events still reach the bus and the log.
    pub async fn emit(&self, mut event: StartEvent) {
        self.stamp(&mut event);
        tracing::info!(
            pod_uid = %event.pod_uid,
            container = %event.container_name,
            step = ?event.step(),
            reason = %event.reason,
            duration_ms = event.duration_micros / 1000,
            "{}",
            event.message
        );
        let kind = if event.is_terminal() {
            Kind::Terminal
        } else {
            Kind::Step
        };
        self.deliver(event, kind);
    }

    /// Like `emit`, for the frequent PullProgress events: logged at debug
    /// level only, and the first a slow caller loses.
    pub async fn emit_progress(&self, mut event: StartEvent) {
        self.stamp(&mut event);
        tracing::debug!(
            pod_uid = %event.pod_uid,
            container = %event.container_name,
            "{}",
            event.message
        );
        self.deliver(event, Kind::Progress);
    }

    /// Whether a terminal event went out through this sink (or a clone).
    fn terminal_sent(&self) -> bool {
        self.audience
            .as_ref()
            .is_some_and(|a| a.lock().terminal_sent)
    }

    /// Runs a request's flow; should it panic, the request still ends
    /// with one terminal event: PodFailed with code INTERNAL (unless its
    /// terminal event went out before the panic).
    pub async fn guard(self, flow: impl Future<Output = ()>) {
        let Err(panic) = AssertUnwindSafe(flow).catch_unwind().await else {
            return;
        };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(pod_uid = %self.uid, panic = %what, "request task panicked");
        if !self.terminal_sent() {
            let e = StartError::TaskFailed("the request's task panicked".to_string());
            self.emit(failed_event(&e)).await;
        }
    }
}

pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// A container's name and kind, as events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    pub kind: ContainerKind,
}

impl ContainerRef {
    pub fn kind_label(&self) -> &'static str {
        kind_label(self.kind)
    }
}

/// The kubelet's `container_type` metric label for a kind.
pub fn kind_label(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::Init | ContainerKind::Sidecar => "init_container",
        ContainerKind::App | ContainerKind::Unspecified => "container",
        ContainerKind::Ephemeral => "ephemeral_container",
    }
}

impl StartEvent {
    /// A Normal event of a pod-level step.
    pub fn at(step: Step, reason: &str, message: impl Into<String>) -> StartEvent {
        let mut e = StartEvent {
            reason: reason.to_string(),
            message: message.into(),
            ..Default::default()
        };
        e.set_step(step);
        e.set_type(EventType::Normal);
        e
    }

    pub fn of(mut self, c: &ContainerRef) -> StartEvent {
        self.container_name.clone_from(&c.name);
        self.set_container_kind(c.kind);
        self
    }

    pub fn took(mut self, d: Duration) -> StartEvent {
        self.duration_micros = micros(d);
        self
    }

    pub fn warning(mut self) -> StartEvent {
        self.set_type(EventType::Warning);
        self
    }

    pub fn with(mut self, payload: Payload) -> StartEvent {
        self.payload = Some(payload);
        self
    }

    /// True for the events that end a stream.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.payload,
            Some(Payload::PodStarted(_) | Payload::PodFailed(_) | Payload::PodStopped(_))
        )
    }
}

/// The event of a container's exit: `Completed` for exit 0, else `Error`
/// (the kubelet's terminated reasons), carrying the exit code, the runtime's
/// reason and the termination message.
pub(super) fn exit_event(
    cref: &ContainerRef,
    id: &str,
    status: &cri::ContainerStatus,
    message: String,
) -> StartEvent {
    let event = StartEvent::at(
        Step::WaitExit,
        if status.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        },
        message,
    )
    .of(cref)
    .with(Payload::Exit(ContainerExit {
        container_id: id.to_string(),
        exit_code: status.exit_code,
        reason: status.reason.clone(),
        message: termination::message(status),
    }));
    if status.exit_code == 0 {
        event
    } else {
        event.warning()
    }
}

/// The PodFailed event for a failure.
pub(super) fn failed_event(e: &StartError) -> StartEvent {
    let container = e.container().unwrap_or_default().to_string();
    let mut event = StartEvent::at(e.step(), e.reason(), e.to_string())
        .warning()
        .with(Payload::PodFailed(PodFailed {
            reason: e.reason().to_string(),
            code: e.code() as i32,
            step: e.step() as i32,
            container_name: container.clone(),
            message: e.to_string(),
        }));
    event.container_name = container;
    event
}

pub(super) fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

/// Ends a request with its one terminal event: `done` of the result, or
/// PodFailed, either carrying how long the request took (`elapsed`, read
/// as the event is made).
pub(super) async fn finish<T>(
    sink: &EventSink,
    elapsed: impl Fn() -> Duration,
    result: Result<T, StartError>,
    done: impl FnOnce(T) -> StartEvent,
) {
    let terminal = match result {
        Ok(t) => done(t),
        Err(e) => failed_event(&e),
    };
    sink.emit(terminal.took(elapsed())).await;
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn pod() -> PodMetadata {
        PodMetadata {
            uid: "u1".into(),
            ..Default::default()
        }
    }

    fn step(i: usize) -> StartEvent {
        StartEvent::at(Step::Create, "Created", format!("event {i}"))
    }

    fn progress(i: usize) -> StartEvent {
        StartEvent::at(Step::Image, "Pulling", format!("progress {i}"))
    }

    fn done() -> StartEvent {
        failed_event(&StartError::Cancelled { why: "test" })
    }

    fn sink(
        buffer: usize,
    ) -> (
        EventSink,
        Metrics,
        impl Stream<Item = Result<StartEvent, Status>>,
    ) {
        let (bus, _) = broadcast::channel(64);
        let metrics = Metrics::new().unwrap();
        let (sink, stream) = EventSink::for_caller(&pod(), bus, buffer, metrics.clone());
        (sink, metrics, stream)
    }

    async fn drain(
        stream: impl Stream<Item = Result<StartEvent, Status>>,
    ) -> (Vec<StartEvent>, Option<Status>) {
        let items: Vec<_> = stream.collect().await;
        let mut events = Vec::new();
        let mut status = None;
        for item in items {
            match item {
                Ok(e) => {
                    assert!(status.is_none(), "nothing after the status");
                    events.push(e);
                }
                Err(s) => status = Some(s),
            }
        }
        (events, status)
    }

    #[tokio::test]
    async fn a_reader_gets_every_event_and_one_terminal_last() {
        let (sink, _, stream) = sink(8);
        let reader = tokio::spawn(drain(stream));
        for i in 0..100 {
            sink.emit(step(i)).await;
            tokio::task::yield_now().await;
        }
        sink.emit(done()).await;
        // Nothing goes out after the terminal event, and the stream ends
        // though the sink is still alive.
        sink.emit(step(100)).await;
        let (events, status) = reader.await.unwrap();
        assert!(status.is_none());
        assert_eq!(events.len(), 101);
        assert!(events.last().unwrap().is_terminal());
    }

    #[tokio::test]
    async fn a_caller_that_does_not_read_loses_progress_then_is_disconnected() {
        let (sink, metrics, stream) = sink(8);
        let (bus_sink, mut bus) = (sink.clone(), sink.bus.subscribe());
        for i in 0..3 {
            sink.emit(step(i)).await;
        }
        // Progress may take the buffer to half full, no further.
        for i in 0..10 {
            sink.emit_progress(progress(i)).await;
        }
        // Steps may take all but the last slot.
        for i in 3..6 {
            sink.emit(step(i)).await;
        }
        assert_eq!(sink.audience.as_ref().unwrap().lock().cut_off, 0);
        // This one does not fit: the caller is cut off; the flow goes on.
        sink.emit(step(6)).await;
        bus_sink.emit(done()).await;
        assert!(sink.terminal_sent());

        let (events, status) = drain(stream).await;
        let status = status.expect("a disconnected caller gets a status");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("not reading"), "{status:?}");
        let messages: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "event 0",
                "event 1",
                "event 2",
                "progress 0",
                "event 3",
                "event 4",
                "event 5"
            ]
        );
        // The node-wide bus got every event.
        let mut on_bus = 0;
        while bus.try_recv().is_ok() {
            on_bus += 1;
        }
        assert_eq!(on_bus, 3 + 10 + 3 + 1 + 1);
        let text = metrics.encode();
        assert!(
            text.contains("podstart_events_dropped_total{reason=\"slow_reader\"} 9"),
            "{text}"
        );
        assert!(
            text.contains("podstart_events_dropped_total{reason=\"disconnected\"} 2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_terminal_event_takes_the_last_slot() {
        let (sink, _, stream) = sink(4);
        for i in 0..3 {
            sink.emit(step(i)).await;
        }
        sink.emit(done()).await;
        let (events, status) = drain(stream).await;
        assert!(status.is_none());
        assert_eq!(events.len(), 4);
        assert!(events[3].is_terminal());
    }

    #[tokio::test]
    async fn a_caller_that_left_costs_nothing() {
        let (sink, metrics, stream) = sink(4);
        drop(stream);
        for i in 0..10 {
            sink.emit(step(i)).await;
        }
        sink.emit(done()).await;
        assert!(!metrics.encode().contains("events_dropped"));
    }

    fn texts(events: &[StartEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    #[tokio::test]
    async fn an_attacher_gets_the_record_then_every_later_event() {
        let (sink, _, first) = sink(16);
        sink.emit(step(0)).await;
        sink.emit_progress(progress(0)).await;
        sink.emit(step(1)).await;
        let second = sink.attach(16).unwrap();
        sink.emit_progress(progress(1)).await;
        sink.emit(step(2)).await;
        let third = sink.attach(16).unwrap();
        sink.emit(done()).await;
        // After the terminal event: the record, ending with it.
        let late = sink.attach(16).unwrap();

        let (first, _) = drain(first).await;
        let (second, status) = drain(second).await;
        assert!(status.is_none());
        assert_eq!(
            texts(&first),
            [
                "event 0",
                "progress 0",
                "event 1",
                "progress 1",
                "event 2",
                "start cancelled: test"
            ]
        );
        // Progress is live only: not in the record.
        assert_eq!(
            texts(&second),
            [
                "event 0",
                "event 1",
                "progress 1",
                "event 2",
                "start cancelled: test"
            ]
        );
        let (third, _) = drain(third).await;
        let (late, _) = drain(late).await;
        assert_eq!(texts(&third), texts(&late));
        assert_eq!(
            texts(&late),
            ["event 0", "event 1", "event 2", "start cancelled: test"]
        );
        // The same terminal event for everyone.
        assert_eq!(first.last(), late.last());
    }

    #[tokio::test]
    async fn an_attacher_gets_at_most_half_its_buffer_of_the_record() {
        let (sink, _, _first) = sink(128);
        for i in 0..40 {
            sink.emit(step(i)).await;
        }
        let small = sink.attach(8).unwrap();
        sink.emit(done()).await;
        let (events, status) = drain(small).await;
        assert!(status.is_none(), "the record fits: {status:?}");
        assert_eq!(
            texts(&events),
            [
                "event 36",
                "event 37",
                "event 38",
                "event 39",
                "start cancelled: test"
            ]
        );
    }

    #[tokio::test]
    async fn one_slow_attacher_is_cut_off_alone() {
        let (sink, metrics, first) = sink(8);
        let reader = tokio::spawn(drain(first));
        let slow = sink.attach(8).unwrap();
        for i in 0..20 {
            sink.emit(step(i)).await;
            tokio::task::yield_now().await;
        }
        sink.emit(done()).await;
        let (events, status) = reader.await.unwrap();
        assert!(status.is_none());
        assert_eq!(events.len(), 21);
        let (_, status) = drain(slow).await;
        assert_eq!(status.map(|s| s.code()), Some(Code::ResourceExhausted));
        assert!(
            metrics
                .encode()
                .contains("podstart_events_dropped_total{reason=\"disconnected\"}"),
        );
    }

    #[tokio::test]
    async fn a_panicking_flow_ends_its_stream_with_internal() {
        let (sink, _, stream) = sink(8);
        let flow_sink = sink.clone();
        sink.guard(async move {
            flow_sink.emit(step(0)).await;
            panic!("boom");
        })
        .await;
        let (events, status) = drain(stream).await;
        assert!(status.is_none());
        assert_eq!(events.len(), 2);
        let Some(Payload::PodFailed(f)) = &events[1].payload else {
            panic!("PodFailed last: {events:?}");
        };
        assert_eq!(f.code, Code::Internal as i32);
        assert_eq!(f.reason, "InternalError");
    }

    #[tokio::test]
    async fn a_panic_after_the_terminal_event_adds_nothing() {
        let (sink, _, stream) = sink(8);
        let flow_sink = sink.clone();
        sink.guard(async move {
            flow_sink.emit(done()).await;
            panic!("late");
        })
        .await;
        let (events, status) = drain(stream).await;
        assert!(status.is_none());
        assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
        assert_eq!(events.len(), 1);
    }
}
