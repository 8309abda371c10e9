//! Probes and lifecycle handlers: the startup probe (with Kubernetes'
//! default timings), postStart and preStop hooks, and the exec, httpGet,
//! tcpSocket and sleep actions they run.

use super::Result;
use super::fields::{Fields, field_error};
use crate::proto::v1::{
    ExecAction, Handler, HttpGetAction, HttpHeader, Lifecycle, Probe, SleepAction, TcpSocketAction,
    handler::Action,
};

pub(super) const NO_PROBES: &str = "podstart does not run liveness/readiness probes";

// Kubernetes' defaults for unset probe timings.
pub(super) const PROBE_PERIOD_SECONDS: i32 = 10;
pub(super) const PROBE_TIMEOUT_SECONDS: i32 = 1;
pub(super) const PROBE_SUCCESS_THRESHOLD: i32 = 1;
pub(super) const PROBE_FAILURE_THRESHOLD: i32 = 3;

pub(super) fn lifecycle(mut l: Fields) -> Result<Lifecycle> {
    let lifecycle = Lifecycle {
        post_start: l.fields("postStart")?.map(hook).transpose()?,
        pre_stop: l.fields("preStop")?.map(hook).transpose()?,
    };
    l.finish()?;
    Ok(lifecycle)
}

pub(super) fn hook(mut h: Fields) -> Result<Handler> {
    if h.take("tcpSocket").is_some() {
        return Err(field_error(
            h.path_of("tcpSocket"),
            "not valid as a lifecycle hook",
        ));
    }
    let action = take_action(&mut h, &["exec", "httpGet", "sleep"])?;
    h.finish()?;
    Ok(Handler { action })
}

pub(super) fn probe(mut p: Fields) -> Result<Probe> {
    let action = take_action(&mut p, &["exec", "httpGet", "tcpSocket"])?;
    let probe = Probe {
        handler: Some(Handler { action }),
        initial_delay_seconds: p.int("initialDelaySeconds")?.unwrap_or(0),
        period_seconds: p.int("periodSeconds")?.unwrap_or(PROBE_PERIOD_SECONDS),
        timeout_seconds: p.int("timeoutSeconds")?.unwrap_or(PROBE_TIMEOUT_SECONDS),
        success_threshold: p
            .int("successThreshold")?
            .unwrap_or(PROBE_SUCCESS_THRESHOLD),
        failure_threshold: p
            .int("failureThreshold")?
            .unwrap_or(PROBE_FAILURE_THRESHOLD),
    };
    p.finish()?;
    Ok(probe)
}

/// Takes the one handler among `kinds` out of a hook or probe; two handlers
/// cannot be represented.
pub(super) fn take_action(h: &mut Fields, kinds: &[&str]) -> Result<Option<Action>> {
    let mut found: Vec<(&str, Action)> = Vec::new();
    for &kind in kinds {
        let Some(mut a) = h.fields(kind)? else {
            continue;
        };
        let action = match kind {
            "exec" => Action::Exec(ExecAction {
                command: a.strings("command")?,
            }),
            "httpGet" => {
                let headers = a
                    .list_of_fields("httpHeaders")?
                    .into_iter()
                    .map(http_header)
                    .collect::<Result<_>>()?;
                Action::HttpGet(HttpGetAction {
                    scheme: a.string("scheme")?.unwrap_or_default(),
                    host: a.string("host")?.unwrap_or_default(),
                    port: a.port("port")?,
                    path: a.string("path")?.unwrap_or_default(),
                    headers,
                })
            }
            "sleep" => Action::Sleep(SleepAction {
                seconds: a.int("seconds")?.unwrap_or(0),
            }),
            _ => Action::TcpSocket(TcpSocketAction {
                host: a.string("host")?.unwrap_or_default(),
                port: a.port("port")?,
            }),
        };
        a.finish()?;
        found.push((kind, action));
    }
    if found.len() > 1 {
        let kinds: Vec<&str> = found.iter().map(|(kind, _)| *kind).collect();
        return Err(field_error(
            h.path.clone(),
            format!("only one handler may be set, found {}", kinds.join(" and ")),
        ));
    }
    Ok(found.pop().map(|(_, action)| action))
}

pub(super) fn http_header(mut h: Fields) -> Result<HttpHeader> {
    let header = HttpHeader {
        name: h.string("name")?.unwrap_or_default(),
        value: h.string("value")?.unwrap_or_default(),
    };
    h.finish()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, lifecycle: {postStart: {tcpSocket: {port: 80}}}}]}",
                "spec.containers[0].lifecycle.postStart.tcpSocket",
                "not valid as a lifecycle hook",
            ),
            (
                "{containers: [{name: a, lifecycle: {preStop: {exec: {command: [x]}, retries: 3}}}]}",
                "spec.containers[0].lifecycle.preStop.retries",
                "not supported",
            ),
            (
                "{containers: [{name: a, lifecycle: {preStop: {sleep: {seconds: 1}, exec: {command: [x]}}}}]}",
                "spec.containers[0].lifecycle.preStop",
                "only one handler may be set, found exec and sleep",
            ),
            (
                "{containers: [{name: a, lifecycle: {stopSignal: SIGUSR1}}]}",
                "spec.containers[0].lifecycle.stopSignal",
                "not supported",
            ),
            (
                "{containers: [{name: a, startupProbe: {grpc: {port: 9000}}}]}",
                "spec.containers[0].startupProbe.grpc",
                "not supported",
            ),
            (
                "{containers: [{name: a, startupProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}}]}",
                "spec.containers[0].startupProbe",
                "only one handler may be set, found exec and tcpSocket",
            ),
            (
                "{containers: [{name: a, startupProbe: {sleep: {seconds: 1}}}]}",
                "spec.containers[0].startupProbe.sleep",
                "not supported",
            ),
            (
                "{containers: [{name: a, startupProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 5}}]}",
                "spec.containers[0].startupProbe.terminationGracePeriodSeconds",
                "not supported",
            ),
        ];
        assert_spec_field_errors(cases);
    }
}
