//! A gRPC probe: one `grpc.health.v1.Health/Check` on the pod IP and the
//! probe's port, as Kubernetes' gRPC prober makes it — plain text, the
//! probe's timeout covering the connection and the call, and its failure
//! messages word for word.
use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::duration;

/// Asks `host:port` whether `service` (empty: the server) is serving:
/// `Ok` for SERVING, else `Err` with the kubelet's message.
pub(super) async fn check(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let within = duration::go(timeout);
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("error: invalid address {addr:?}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            return Err(format!(
                "error: failed to connect service at {addr:?}: {}",
                source_text(&e)
            ));
        }
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {addr:?} within {within}"
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let answer = tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await;
    match answer {
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {within}"
        )),
        Ok(Err(status)) => Err(match status.code() {
            tonic::Code::Unimplemented => format!(
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                format!("timeout: health rpc did not complete within {within}")
            }
            code => format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            ),
        }),
        Ok(Ok(response)) => {
            let status = response.into_inner().status();
            if status == ServingStatus::Serving {
                Ok(())
            } else {
                Err(format!(
                    "service unhealthy (responded with {:?})",
                    status.as_str_name()
                ))
            }
        }
    }
}

/// The innermost cause of a connection error (the transport's own text
/// says only "transport error").
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use tonic_health::server::health_reporter;

    /// A health server on 127.0.0.1 where `svc` reports `serving`.
    async fn server(svc: &'static str, serving: bool) -> u16 {
        let (reporter, service) = health_reporter();
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status(svc, status).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _keep = reporter;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        port
    }

    #[tokio::test]
    async fn serving_succeeds_and_not_serving_says_so() {
        let port = server("web", true).await;
        check("127.0.0.1", port, "web", Duration::from_secs(5))
            .await
            .unwrap();
        let port = server("db", false).await;
        let e = check("127.0.0.1", port, "db", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e, "service unhealthy (responded with \"NOT_SERVING\")");
    }

    #[tokio::test]
    async fn unknown_service_and_no_server() {
        let port = server("web", true).await;
        let e = check("127.0.0.1", port, "other", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
            "{e}"
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = check("127.0.0.1", port, "", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "error: failed to connect service at \"127.0.0.1:{port}\": "
            )),
            "{e}"
        );
    }
}
