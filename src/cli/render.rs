//! Turning events and pods into lines for people (`--output text`) or
//! scripts (`--output json`, one object per line).
use std::time::Duration;

use serde_json::{Value, json};

use crate::duration;
use crate::proto::v1::{
    ContainerKind, ContainerState, EventType, Pod, SandboxState, StartEvent, Step,
    start_event::Payload,
};

fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

pub fn step_name(s: Step) -> String {
    enum_name(s.as_str_name(), "STEP_")
}

pub fn kind_name(k: ContainerKind) -> String {
    enum_name(k.as_str_name(), "CONTAINER_KIND_")
}

fn secs(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// `[  0.189s] init/setup   Pulled   message (12ms)`; `since` is the first
/// event's time, so lines show the time into the request.
pub fn event_line(e: &StartEvent, since: i64) -> String {
    let at = (e.time_unix_nano - since).max(0) as f64 / 1e9;
    let who = if e.container_name.is_empty() {
        "pod".to_string()
    } else {
        format!("{}/{}", kind_name(e.container_kind()), e.container_name)
    };
    let took = if e.duration_micros > 0 {
        format!(" ({})", human_micros(e.duration_micros))
    } else {
        String::new()
    };
    let mark = if e.r#type() == EventType::Warning {
        "!"
    } else {
        " "
    };
    let mut line = format!(
        "[{at:8.3}s]{mark}{who:<20} {reason:<22} {message}{took}",
        reason = e.reason,
        message = e.message
    );
    if let Some(Payload::PullProgress(p)) = &e.payload
        && p.bytes_total > 0
    {
        line.push(' ');
        line.push_str(&progress_bar(p.bytes_done, p.bytes_total));
    }
    if let Some(Payload::PodStarted(p)) = &e.payload {
        line.push_str(&format!(
            "\n  sandbox {} ip {} containers {}",
            p.sandbox_id,
            if p.ips.is_empty() {
                "-".to_string()
            } else {
                p.ips.join(",")
            },
            p.containers
                .iter()
                .map(|c| format!(
                    "{}={}",
                    c.name,
                    &c.container_id[..c.container_id.len().min(13)]
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    line
}

/// `[##########··········]  50%`
pub fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 20;
    let done = done.min(total);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(0);
    let percent = (done * 100).checked_div(total).unwrap_or(0);
    format!(
        "[{}{}] {percent:>3}%",
        "#".repeat(filled as usize),
        "·".repeat((WIDTH - filled) as usize)
    )
}

/// A step's duration, Go-style, to a precision that suits its size
/// (`20µs`, `1.5ms`, `2.504s`).
fn human_micros(us: u64) -> String {
    let d = Duration::from_micros(us);
    let unit = if d < Duration::from_secs(1) {
        Duration::from_micros(100)
    } else {
        Duration::from_millis(1)
    };
    let shown = if d < Duration::from_millis(1) {
        d
    } else {
        duration::truncate(d, unit)
    };
    duration::go(shown)
}

pub fn event_json(e: &StartEvent) -> Value {
    let payload = match &e.payload {
        None => Value::Null,
        Some(Payload::Sandbox(s)) => json!({"sandbox": {
            "sandbox_id": s.sandbox_id, "ips": s.ips, "log_directory": s.log_directory}}),
        Some(Payload::Image(i)) => json!({"image": {
            "image": i.image, "image_ref": i.image_ref, "size_bytes": i.size_bytes,
            "already_present": i.already_present}}),
        Some(Payload::Container(c)) => json!({"container": {
            "container_id": c.container_id, "restart_count": c.restart_count, "log_path": c.log_path}}),
        Some(Payload::Exit(x)) => json!({"exit": {
            "container_id": x.container_id, "exit_code": x.exit_code, "reason": x.reason,
            "message": x.message}}),
        Some(Payload::PodStarted(p)) => json!({"pod_started": {
            "sandbox_id": p.sandbox_id, "ips": p.ips,
            "containers": p.containers.iter().map(|c| json!({
                "name": c.name, "kind": kind_name(c.kind()), "container_id": c.container_id})).collect::<Vec<_>>(),
            "timings": p.timings.iter().map(|t| json!({
                "container": t.container_name, "step": step_name(t.step()),
                "seconds": secs(t.duration_micros)})).collect::<Vec<_>>(),
            "total_seconds": secs(p.total_duration_micros),
            "already_running": p.already_running}}),
        Some(Payload::PodFailed(f)) => json!({"pod_failed": {
            "reason": f.reason, "code": tonic::Code::from_i32(f.code).description(),
            "grpc_code": f.code, "step": step_name(f.step()), "container": f.container_name,
            "message": f.message}}),
        Some(Payload::PullProgress(p)) => json!({"pull_progress": {
            "image": p.image, "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
            "layers_done": p.layers_done, "layers_total": p.layers_total,
            "elapsed_seconds": secs(p.elapsed_micros), "queued": p.queued,
            "source": enum_name(p.source().as_str_name(), "PROGRESS_SOURCE_")}}),
        Some(Payload::Readiness(r)) => json!({"readiness": {
            "container_ready": r.container_ready, "pod_ready": r.pod_ready}}),
        Some(Payload::PodStopped(s)) => json!({"pod_stopped": {
            "sandbox_id": s.sandbox_id, "containers_stopped": s.containers_stopped,
            "total_seconds": secs(s.total_duration_micros)}}),
        Some(Payload::BackOff(b)) => json!({"back_off": {
            "waiting_reason": b.waiting_reason, "message": b.message,
            "delay_seconds": secs(b.delay_micros), "retry_at_unix_nano": b.retry_at_unix_nano,
            "finished_at_unix_nano": b.finished_at_unix_nano}}),
    };
    // A pod-level event names no container: its kind is "pod", as the
    // text output's column.
    let kind = if e.container_name.is_empty() {
        "pod".to_owned()
    } else {
        kind_name(e.container_kind())
    };
    json!({
        "time_unix_nano": e.time_unix_nano,
        "pod_uid": e.pod_uid,
        "pod": format!("{}/{}", e.pod_namespace, e.pod_name),
        "container": e.container_name,
        "kind": kind,
        "step": step_name(e.step()),
        "type": enum_name(e.r#type().as_str_name(), "EVENT_TYPE_"),
        "reason": e.reason,
        "message": e.message,
        "duration_seconds": secs(e.duration_micros),
        "payload": payload,
    })
}

pub fn pod_json(p: &Pod) -> Value {
    json!({
        "uid": p.uid, "name": p.name, "namespace": p.namespace, "attempt": p.attempt,
        "sandbox_id": p.sandbox_id,
        "state": enum_name(p.state().as_str_name(), "SANDBOX_STATE_"),
        "ips": p.ips, "created_at_unix_nano": p.created_at_unix_nano, "labels": p.labels,
        "containers": p.containers.iter().map(|c| json!({
            "name": c.name, "kind": kind_name(c.kind()), "id": c.id,
            "state": enum_name(c.state().as_str_name(), "CONTAINER_STATE_"),
            "exit_code": c.exit_code, "reason": c.reason, "message": c.message,
            "image": c.image, "image_ref": c.image_ref, "restart_count": c.restart_count,
            "created_at_unix_nano": c.created_at_unix_nano,
            "started_at_unix_nano": c.started_at_unix_nano,
            "finished_at_unix_nano": c.finished_at_unix_nano,
            "log_path": c.log_path})).collect::<Vec<_>>(),
    })
}

pub fn pod_text(p: &Pod) -> String {
    let mut out = format!(
        "pod {}/{} uid {}\n  sandbox {} {} ip {}\n",
        p.namespace,
        p.name,
        p.uid,
        p.sandbox_id,
        sandbox_state(p.state()),
        if p.ips.is_empty() {
            "-".to_string()
        } else {
            p.ips.join(",")
        }
    );
    for c in &p.containers {
        out.push_str(&format!(
            "  {:<9} {:<20} {:<8} restarts {:<3} exit {:<4} {} {}\n",
            kind_name(c.kind()),
            c.name,
            container_state(c.state()),
            c.restart_count,
            c.exit_code,
            c.id.get(..13).unwrap_or(&c.id),
            c.image
        ));
    }
    out
}

pub fn pod_row(p: &Pod) -> String {
    let running = p
        .containers
        .iter()
        .filter(|c| c.state() == ContainerState::Running)
        .count();
    format!(
        "{:<16} {:<24} {:<38} {:<9} {:<16} {}/{}",
        p.namespace,
        p.name,
        p.uid,
        sandbox_state(p.state()),
        p.ips.first().map_or("-", String::as_str),
        running,
        p.containers.len()
    )
}

fn sandbox_state(s: SandboxState) -> String {
    enum_name(s.as_str_name(), "SANDBOX_STATE_")
}

fn container_state(s: ContainerState) -> String {
    enum_name(s.as_str_name(), "CONTAINER_STATE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_durations() {
        assert_eq!(human_micros(20), "20µs");
        assert_eq!(human_micros(1_549), "1.5ms");
        assert_eq!(human_micros(999_999), "999.9ms");
        assert_eq!(human_micros(2_504_900), "2.504s");
        assert_eq!(human_micros(90_000_000), "1m30s");
    }

    #[test]
    fn progress_bars() {
        assert_eq!(progress_bar(0, 100), format!("[{}]   0%", "·".repeat(20)));
        assert_eq!(
            progress_bar(50, 100),
            format!("[{}{}]  50%", "#".repeat(10), "·".repeat(10))
        );
        assert_eq!(progress_bar(200, 100), format!("[{}] 100%", "#".repeat(20)));
    }
    use crate::proto::v1::PodFailed;

    #[test]
    fn failure_renders_reason_code_and_step() {
        let mut e = StartEvent::at(Step::Image, "ErrImageNeverPull", "not present")
            .warning()
            .with(Payload::PodFailed(PodFailed {
                reason: "ErrImageNeverPull".into(),
                code: tonic::Code::FailedPrecondition as i32,
                step: Step::Image as i32,
                container_name: "web".into(),
                message: "not present".into(),
            }));
        e.container_name = "web".into();
        e.set_container_kind(ContainerKind::App);
        let v = event_json(&e);
        assert_eq!(v["step"], "image");
        assert_eq!(v["kind"], "app");
        assert_eq!(v["type"], "warning");
        assert_eq!(v["payload"]["pod_failed"]["grpc_code"], 9);
        assert_eq!(v["payload"]["pod_failed"]["step"], "image");
        let line = event_line(&e, e.time_unix_nano);
        assert!(line.contains("app/web"), "{line}");
        assert!(line.contains("ErrImageNeverPull"), "{line}");
        assert!(line.contains('!'), "warnings are marked: {line}");
    }

    #[test]
    fn pod_level_events_are_of_kind_pod() {
        let e = StartEvent::at(Step::Done, "PodStarted", "started");
        assert_eq!(event_json(&e)["kind"], "pod");
        let line = event_line(&e, e.time_unix_nano);
        assert!(line.contains("pod "), "{line}");
    }
}
