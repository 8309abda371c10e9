//! Lifecycle handlers (PostStart, PreStop): exec through CRI ExecSync, HTTP
//! GET against the pod, sleep. Failures say what failed, never what the
//! command printed (it may hold secrets).
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio_util::sync::CancellationToken;

use crate::cri::{Cri, CriError};
use crate::proto::v1::{Container, Handler, HttpGetAction, handler::Action};

/// The most of an HTTP hook's response body that is read (as the kubelet).
const MAX_BODY_BYTES: usize = 10 * 1024;
/// Deadline of an HTTP hook when no hook timeout is configured.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("exec hook exited with code {0}")]
    ExitCode(i32),
    #[error("exec hook could not run: {0}")]
    Exec(CriError),
    #[error("http hook: {0}")]
    Http(String),
    #[error("http hook: GET returned status {0}")]
    HttpStatus(u16),
    #[error("hook timed out after {0:?}")]
    Timeout(Duration),
    #[error("container terminated before sleep hook finished")]
    SleepCancelled,
    #[error("hook cancelled")]
    Cancelled,
    #[error("invalid handler: {0}")]
    Invalid(&'static str),
}

/// One handler run against one container.
pub(super) struct HookRun<'a> {
    pub cri: &'a Cri,
    pub container_id: &'a str,
    pub container: &'a Container,
    pub pod_ip: Option<&'a str>,
    /// Zero: no limit for exec hooks (the kubelet's behaviour).
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
}

impl HookRun<'_> {
    pub async fn run(&self, handler: &Handler) -> Result<(), HookError> {
        match handler.action.as_ref() {
            Some(Action::Exec(exec)) => self.exec(exec.command.clone()).await,
            Some(Action::HttpGet(get)) => self.http_get(get).await,
            Some(Action::Sleep(sleep)) => {
                let d = Duration::from_secs(sleep.seconds.max(0) as u64);
                tokio::select! {
                    _ = self.cancel.cancelled() => Err(HookError::SleepCancelled),
                    _ = tokio::time::sleep(d) => Ok(()),
                }
            }
            Some(Action::TcpSocket(_)) => {
                Err(HookError::Invalid("tcpSocket is not a lifecycle hook"))
            }
            None => Err(HookError::Invalid("no action")),
        }
    }

    async fn exec(&self, cmd: Vec<String>) -> Result<(), HookError> {
        let call = self.cri.exec_sync(self.container_id, cmd, self.timeout);
        let resp = tokio::select! {
            _ = self.cancel.cancelled() => return Err(HookError::Cancelled),
            r = call => r.map_err(HookError::Exec)?,
        };
        if resp.exit_code == 0 {
            Ok(())
        } else {
            Err(HookError::ExitCode(resp.exit_code))
        }
    }

    async fn http_get(&self, get: &HttpGetAction) -> Result<(), HookError> {
        let url = hook_url(get, self.pod_ip, self.container)?;
        let timeout = if self.timeout.is_zero() {
            DEFAULT_HTTP_TIMEOUT
        } else {
            self.timeout
        };
        let mut req = hyper::Request::get(url.as_str());
        for h in &get.headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        let req = req
            .header(
                "user-agent",
                concat!("podstart/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| HookError::Http(format!("bad request: {e}")))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let work = async {
            let resp = client
                .request(req)
                .await
                .map_err(|e| HookError::Http(format!("GET {url}: {e}")))?;
            let status = resp.status().as_u16();
            // Read (and drop) at most MAX_BODY_BYTES so the connection is
            // left clean.
            let mut body = resp.into_body();
            let mut read = 0usize;
            while read < MAX_BODY_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(HookError::HttpStatus(status))
            }
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Err(HookError::Cancelled),
            r = tokio::time::timeout(timeout, work) => r.unwrap_or(Err(HookError::Timeout(timeout))),
        }
    }
}

/// The URL an HTTP hook calls: host defaults to the pod IP, the port may name
/// a container port.
pub(super) fn hook_url(
    get: &HttpGetAction,
    pod_ip: Option<&str>,
    container: &Container,
) -> Result<String, HookError> {
    let scheme = get.scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "" | "http" => {}
        "https" => {
            return Err(HookError::Invalid(
                "HTTPS lifecycle hooks are not supported yet",
            ));
        }
        _ => return Err(HookError::Invalid("scheme must be HTTP or HTTPS")),
    }
    let host = if get.host.is_empty() {
        pod_ip.ok_or(HookError::Invalid("no host given and the pod has no IP"))?
    } else {
        get.host.as_str()
    };
    let port: u16 = match get.port.parse() {
        Ok(p) => p,
        Err(_) => container
            .ports
            .iter()
            .find(|p| p.name == get.port)
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or(HookError::Invalid("port names no container port"))?,
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = if get.path.starts_with('/') {
        get.path.clone()
    } else {
        format!("/{}", get.path)
    };
    Ok(format!("http://{host}:{port}{path}"))
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
        assert_eq!(
            hook_url(&get("", "http", "ready"), Some("10.0.0.5"), &container).unwrap(),
            "http://10.0.0.5:8080/ready"
        );
        assert_eq!(
            hook_url(&get("127.0.0.1", "81", "/x"), None, &container).unwrap(),
            "http://127.0.0.1:81/x"
        );
        assert_eq!(
            hook_url(&get("", "80", "/"), Some("fd00::1"), &container).unwrap(),
            "http://[fd00::1]:80/"
        );
        assert!(hook_url(&get("", "80", "/"), None, &container).is_err());
        assert!(hook_url(&get("", "metrics", "/"), Some("10.0.0.5"), &container).is_err());
    }
}
