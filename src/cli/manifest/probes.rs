//! Probes and lifecycle handlers: startup, liveness and readiness probes
//! (with Kubernetes' default timings), postStart and preStop hooks, and the
//! exec, httpGet, tcpSocket, grpc and sleep actions they run.

use super::fields::Fields;
use crate::proto::v1::{
    ExecAction, GrpcAction, Handler, HttpGetAction, HttpHeader, Lifecycle, Probe, SleepAction,
    TcpSocketAction, handler::Action,
};

// Kubernetes' defaults for unset probe timings.
pub(super) const PROBE_PERIOD_SECONDS: i32 = 10;
pub(super) const PROBE_TIMEOUT_SECONDS: i32 = 1;
pub(super) const PROBE_SUCCESS_THRESHOLD: i32 = 1;
pub(super) const PROBE_FAILURE_THRESHOLD: i32 = 3;

pub(super) fn lifecycle(mut l: Fields) -> Lifecycle {
    let lifecycle = Lifecycle {
        post_start: l.fields("postStart").map(hook),
        pre_stop: l.fields("preStop").map(hook),
    };
    l.finish();
    lifecycle
}

pub(super) fn hook(mut h: Fields) -> Handler {
    for kind in ["tcpSocket", "grpc"] {
        if h.take(kind).is_some() {
            h.error(h.path_of(kind), "not valid as a lifecycle hook");
        }
    }
    let action = take_action(&mut h, &["exec", "httpGet", "sleep"]);
    h.finish();
    Handler { action }
}

/// A startup, liveness or readiness probe, with Kubernetes' defaults for
/// unset timings.
pub(super) fn probe(mut p: Fields) -> Probe {
    let action = take_action(&mut p, &["exec", "httpGet", "tcpSocket", "grpc"]);
    let probe = Probe {
        handler: Some(Handler { action }),
        initial_delay_seconds: p.int("initialDelaySeconds").unwrap_or(0),
        period_seconds: p.int("periodSeconds").unwrap_or(PROBE_PERIOD_SECONDS),
        timeout_seconds: p.int("timeoutSeconds").unwrap_or(PROBE_TIMEOUT_SECONDS),
        success_threshold: p.int("successThreshold").unwrap_or(PROBE_SUCCESS_THRESHOLD),
        failure_threshold: p.int("failureThreshold").unwrap_or(PROBE_FAILURE_THRESHOLD),
    };
    p.finish();
    probe
}

/// Takes the one handler among `kinds` out of a hook or probe; two handlers
/// cannot be represented.
pub(super) fn take_action(h: &mut Fields, kinds: &[&str]) -> Option<Action> {
    let mut found: Vec<(&str, Action)> = Vec::new();
    for &kind in kinds {
        let Some(mut a) = h.fields(kind) else {
            continue;
        };
        let action = match kind {
            "exec" => Action::Exec(ExecAction {
                command: a.strings("command"),
            }),
            "httpGet" => {
                let headers = a
                    .list_of_fields("httpHeaders")
                    .into_iter()
                    .map(http_header)
                    .collect();
                Action::HttpGet(HttpGetAction {
                    scheme: a.string("scheme").unwrap_or_default(),
                    host: a.string("host").unwrap_or_default(),
                    port: a.port("port"),
                    path: a.string("path").unwrap_or_default(),
                    headers,
                })
            }
            "sleep" => Action::Sleep(SleepAction {
                seconds: a.int("seconds").unwrap_or(0),
            }),
            "grpc" => Action::Grpc(GrpcAction {
                port: a.int("port").unwrap_or(0),
                service: a.string("service").unwrap_or_default(),
            }),
            _ => Action::TcpSocket(TcpSocketAction {
                host: a.string("host").unwrap_or_default(),
                port: a.port("port"),
            }),
        };
        a.finish();
        found.push((kind, action));
    }
    if found.len() > 1 {
        let kinds: Vec<&str> = found.iter().map(|(kind, _)| *kind).collect();
        h.error(
            h.path.clone(),
            format!("only one handler may be set, found {}", kinds.join(" and ")),
        );
        return None;
    }
    found.pop().map(|(_, action)| action)
}

pub(super) fn http_header(mut h: Fields) -> HttpHeader {
    let header = HttpHeader {
        name: h.string("name").unwrap_or_default(),
        value: h.string("value").unwrap_or_default(),
    };
    h.finish();
    header
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
                "{containers: [{name: a, livenessProbe: {grpc: {port: 9000, tls: true}}}]}",
                "spec.containers[0].livenessProbe.grpc.tls",
                "not supported",
            ),
            (
                "{containers: [{name: a, lifecycle: {preStop: {grpc: {port: 9000}}}}]}",
                "spec.containers[0].lifecycle.preStop.grpc",
                "not valid as a lifecycle hook",
            ),
            (
                "{containers: [{name: a, readinessProbe: {grpc: {port: 1}, httpGet: {port: 2}}}]}",
                "spec.containers[0].readinessProbe",
                "only one handler may be set, found httpGet and grpc",
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

    #[test]
    fn liveness_and_readiness_probes_take_kubernetes_defaults() {
        let manifest = parse_manifest(&pod_yaml(
            "{containers: [{name: a, image: i, \
             livenessProbe: {grpc: {port: 9000, service: health}, periodSeconds: 5}, \
             readinessProbe: {exec: {command: [cat, /ready]}, successThreshold: 2}}]}",
        ))
        .expect("converts");
        let container = &pod_spec(&manifest).containers[0];
        let probe = |action, period, success| Probe {
            handler: Some(Handler {
                action: Some(action),
            }),
            initial_delay_seconds: 0,
            period_seconds: period,
            timeout_seconds: 1,
            success_threshold: success,
            failure_threshold: 3,
        };
        assert_eq!(
            container.liveness_probe,
            Some(probe(
                handler::Action::Grpc(GrpcAction {
                    port: 9000,
                    service: "health".into()
                }),
                5,
                1
            ))
        );
        assert_eq!(
            container.readiness_probe,
            Some(probe(
                handler::Action::Exec(ExecAction {
                    command: strings(&["cat", "/ready"])
                }),
                10,
                2
            ))
        );
    }
}
