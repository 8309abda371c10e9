//! Lifecycle handlers (PostStart, PreStop): exec through CRI ExecSync, HTTP
//! GET against the pod (HTTPS without certificate checks, falling back to
//! HTTP when the server answers in plain HTTP, as the kubelet does), sleep
//! (cut short when the container stops). Failures say what failed, never
//! what the command or server printed (it may hold secrets).
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::http::{Get, HttpError};
use crate::cri::{Cri, CriError};
use crate::proto::v1::{Container, Handler, HttpGetAction, handler::Action};

/// Deadline of an HTTP hook when no hook timeout is configured.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(super) enum HookError {
    #[error("exec hook exited with code {0}")]
    ExitCode(i32),
    #[error("exec hook could not run: {0}")]
    Exec(CriError),
    #[error("http hook: {0}")]
    Http(HttpError),
    #[error("http hook: GET returned status {0}")]
    HttpStatus(u16),
    #[error("container terminated before sleep hook finished")]
    SleepCancelled,
    #[error("hook cancelled")]
    Cancelled,
    #[error("invalid handler: {0}")]
    Invalid(&'static str),
}

/// How a successful hook went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct HookOutcome {
    /// An HTTPS hook was answered in plain HTTP and retried over HTTP: the
    /// host it called (the kubelet's `LifecycleHTTPFallback`).
    pub http_fallback: Option<String>,
}

/// One handler run against one container.
pub(super) struct HookRun<'a> {
    pub cri: &'a Cri,
    pub container_id: &'a str,
    pub container: &'a Container,
    pub pod_ip: Option<&'a str>,
    /// Zero: no limit for exec hooks (the kubelet's behaviour).
    pub timeout: Duration,
    /// Fires when the hook must end: the pod is stopping, or the container
    /// stopped.
    pub cancel: &'a CancellationToken,
}

impl HookRun<'_> {
    pub(super) async fn run(&self, handler: &Handler) -> Result<HookOutcome, HookError> {
        match handler.action.as_ref() {
            Some(Action::Exec(exec)) => self
                .exec(exec.command.clone())
                .await
                .map(|()| HookOutcome::default()),
            Some(Action::HttpGet(get)) => self.http_get(get).await,
            Some(Action::Sleep(sleep)) => {
                let d = Duration::from_secs(sleep.seconds.max(0) as u64);
                tokio::select! {
                    _ = self.cancel.cancelled() => Err(HookError::SleepCancelled),
                    _ = tokio::time::sleep(d) => Ok(HookOutcome::default()),
                }
            }
            Some(Action::TcpSocket(_)) => {
                Err(HookError::Invalid("tcpSocket is not a lifecycle hook"))
            }
            Some(Action::Grpc(_)) => Err(HookError::Invalid("grpc is not a lifecycle hook")),
            None => Err(HookError::Invalid("no action")),
        }
    }

    async fn exec(&self, cmd: Vec<String>) -> Result<(), HookError> {
        let call = self.cri.exec_sync(self.container_id, cmd, self.timeout);
        let resp = tokio::select! {
            _ = self.cancel.cancelled() => return Err(HookError::Cancelled),
            r = call => r.map_err(HookError::Exec)?,
        };
        // The response's stdout and stderr are dropped unread.
        if resp.exit_code == 0 {
            Ok(())
        } else {
            Err(HookError::ExitCode(resp.exit_code))
        }
    }

    async fn http_get(&self, action: &HttpGetAction) -> Result<HookOutcome, HookError> {
        let target = target(action, self.pod_ip, self.container)?;
        let timeout = if self.timeout.is_zero() {
            DEFAULT_HTTP_TIMEOUT
        } else {
            self.timeout
        };
        let get = target.get();
        let work = async {
            let mut outcome = HookOutcome::default();
            let status = match get.send(timeout).await {
                Err(HttpError::PlainHttpAnswer) if get.https => {
                    outcome.http_fallback = Some(format!("{}:{}", target.host, target.port));
                    Get {
                        https: false,
                        ..get
                    }
                    .send(timeout)
                    .await
                }
                other => other,
            }
            .map_err(HookError::Http)?;
            if (200..400).contains(&status) {
                Ok(outcome)
            } else {
                Err(HookError::HttpStatus(status))
            }
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Err(HookError::Cancelled),
            r = work => r,
        }
    }
}

/// Where an HTTP hook or probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Target {
    /// The GET request for this target.
    pub(super) fn get(&self) -> Get<'_> {
        Get {
            https: self.https,
            host: &self.host,
            port: self.port,
            path: &self.path,
            headers: &self.headers,
        }
    }
}

/// The target of an HTTP GET action: the host defaults to the pod IP, the
/// port may name a container port, the path gets a leading `/`.
pub(super) fn target(
    get: &HttpGetAction,
    pod_ip: Option<&str>,
    container: &Container,
) -> Result<Target, HookError> {
    let https = match get.scheme.to_ascii_lowercase().as_str() {
        "" | "http" => false,
        "https" => true,
        _ => return Err(HookError::Invalid("scheme must be HTTP or HTTPS")),
    };
    let host = if get.host.is_empty() {
        pod_ip.ok_or(HookError::Invalid("no host given and the pod has no IP"))?
    } else {
        get.host.as_str()
    };
    let port = port_of(&get.port, container).ok_or(HookError::Invalid(
        "port is neither a number nor a container port name",
    ))?;
    let path = if get.path.starts_with('/') {
        get.path.clone()
    } else {
        format!("/{}", get.path)
    };
    Ok(Target {
        https,
        host: host.to_string(),
        port,
        path,
        headers: get
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

/// A port given by number or by the name of one of the container's ports.
pub(super) fn port_of(port: &str, container: &Container) -> Option<u16> {
    match port.parse() {
        Ok(p) => Some(p),
        Err(_) => container
            .ports
            .iter()
            .find(|p| p.name == port)
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::ContainerPort;

    #[test]
    fn url_defaults_to_pod_ip_and_resolves_named_ports() {
        let container = Container {
            ports: vec![ContainerPort {
                name: "http".into(),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        };
        let get = |host: &str, port: &str, path: &str| HttpGetAction {
            host: host.into(),
            port: port.into(),
            path: path.into(),
            ..Default::default()
        };
        let t = |host: &str, port: &str, path: &str, ip| {
            target(&get(host, port, path), ip, &container).map(|t| (t.host, t.port, t.path))
        };
        assert_eq!(
            t("", "http", "ready", Some("10.0.0.5")).unwrap(),
            ("10.0.0.5".to_string(), 8080, "/ready".to_string())
        );
        assert_eq!(
            t("127.0.0.1", "81", "/x", None).unwrap(),
            ("127.0.0.1".to_string(), 81, "/x".to_string())
        );
        assert!(t("", "80", "/", None).is_err());
        assert!(t("", "metrics", "/", Some("10.0.0.5")).is_err());
        let mut https = get("", "443", "/");
        https.scheme = "HTTPS".into();
        assert!(target(&https, Some("10.0.0.5"), &container).unwrap().https);
        https.scheme = "ftp".into();
        assert!(target(&https, Some("10.0.0.5"), &container).is_err());
    }
}
