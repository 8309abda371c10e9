//! One run of a probe's handler, as the kubelet's prober runs it: exec
//! (ExecSync bounded by the probe's timeout, exit 0 succeeds), HTTP GET
//! (status 200–399 succeeds; HTTPS without certificate checks), TCP
//! (a connection within the timeout succeeds), gRPC (`grpc_health.rs`:
//! the health service answers SERVING). The failure text says what
//! failed, never what the command printed. Timing, thresholds and what a
//! result means for the container live in `sidecar.rs` (startup of
//! sidecars) and `probing.rs` (every probe after the start).
use std::time::Duration;

use crate::cri::Cri;
use crate::proto::v1::{Container, Probe, handler::Action};

use super::{context::PodContext, grpc_health, hooks};

/// Kubernetes' probe defaults.
pub(super) const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub(super) const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// A probe's timing with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

impl Timing {
    pub(super) fn of(p: &Probe) -> Timing {
        let secs = |v: i32, default: Duration| {
            if v > 0 {
                Duration::from_secs(v as u64)
            } else {
                default
            }
        };
        Timing {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.max(0) as u64),
            period: secs(p.period_seconds, DEFAULT_PERIOD),
            timeout: secs(p.timeout_seconds, DEFAULT_TIMEOUT),
            failure_threshold: if p.failure_threshold > 0 {
                p.failure_threshold as u32
            } else {
                DEFAULT_FAILURE_THRESHOLD
            },
        }
    }
}

/// The host a probe without one goes to: the pod IP; a host-network pod's
/// is the node's, reached on its loopback.
pub(super) fn default_host(ctx: &PodContext) -> Option<String> {
    ctx.ips.first().cloned().or_else(|| {
        ctx.pod
            .host_network
            .then(|| std::net::Ipv4Addr::LOCALHOST.to_string())
    })
}

/// Runs the probe's handler once: `Ok` on success, `Err(why)` on failure.
pub(super) async fn probe_once(
    cri: &Cri,
    container_id: &str,
    container: &Container,
    probe: &Probe,
    pod_ip: Option<&str>,
) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    let action = probe
        .handler
        .as_ref()
        .and_then(|h| h.action.as_ref())
        .ok_or_else(|| "the probe has no handler".to_string())?;
    match action {
        Action::Exec(exec) => {
            match cri
                .exec_sync(container_id, exec.command.clone(), timeout)
                .await
            {
                Ok(r) if r.exit_code == 0 => Ok(()),
                Ok(r) => Err(format!("command exited with code {}", r.exit_code)),
                Err(e) if e.code() == tonic::Code::DeadlineExceeded => {
                    Err(format!("command timed out after {}s", timeout.as_secs()))
                }
                Err(e) => Err(format!("exec failed: {}", e.code())),
            }
        }
        Action::HttpGet(action) => {
            let t = hooks::target(action, pod_ip, container).map_err(|e| e.to_string())?;
            let get = t.get();
            match get.send(timeout).await {
                Ok(status) if (200..400).contains(&status) => Ok(()),
                Ok(status) => Err(format!("HTTP probe failed with statuscode: {status}")),
                Err(e) => Err(format!("Get {:?}: {e}", get.describe())),
            }
        }
        Action::TcpSocket(tcp) => {
            let host = if tcp.host.is_empty() {
                pod_ip.ok_or_else(|| "no host given and the pod has no IP".to_string())?
            } else {
                tcp.host.as_str()
            };
            let port = hooks::port_of(&tcp.port, container)
                .ok_or_else(|| format!("port {:?} names no container port", tcp.port))?;
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Sleep(_) => Err("sleep is not a probe action".to_string()),
        Action::Grpc(g) => {
            let host = pod_ip.ok_or_else(|| "the pod has no IP".to_string())?;
            let port =
                u16::try_from(g.port).map_err(|_| format!("port {} is not a port", g.port))?;
            grpc_health::check(host, port, &g.service, timeout).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_defaults_are_kubernetes() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.failure_threshold, 3);
        let t = Timing::of(&Probe {
            initial_delay_seconds: 2,
            period_seconds: 1,
            timeout_seconds: 5,
            failure_threshold: 1,
            ..Default::default()
        });
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::from_secs(2),
                period: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
                failure_threshold: 1,
            }
        );
    }
}
