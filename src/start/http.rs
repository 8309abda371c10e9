//! One HTTP GET for lifecycle hooks and probes, as the kubelet makes it:
//! HTTP/1.1, HTTPS without certificate verification (the kubelet's probes
//! and hooks skip it), at most 10 KiB of the body read, and a named error
//! when an HTTPS request got a plain HTTP answer (hooks then fall back to
//! HTTP). No retries, no redirects, no connection reuse.
use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::net::TcpStream;

/// The most of a response body that is read (the kubelet's 10 KiB).
pub(super) const MAX_BODY_BYTES: usize = 10 * 1024;

#[derive(Debug, thiserror::Error)]
pub(super) enum HttpError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS handshake with {0}: {1}")]
    Tls(String, std::io::Error),
    /// The server answered an HTTPS request in plain HTTP.
    #[error("server gave HTTP response to HTTPS client")]
    PlainHttpAnswer,
    #[error("request: {0}")]
    Request(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Where and what to GET.
pub(super) struct Get<'a> {
    pub https: bool,
    pub host: &'a str,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    pub headers: &'a [(String, String)],
}

impl Get<'_> {
    /// The URL, for messages (query strings left out: they may carry tokens).
    pub(super) fn describe(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{scheme}://{}{path}", self.authority())
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends the request and returns the status code, reading at most
    /// `MAX_BODY_BYTES` of the body.
    pub(super) async fn send(&self, timeout: Duration) -> Result<u16, HttpError> {
        tokio::time::timeout(timeout, self.exchange())
            .await
            .unwrap_or(Err(HttpError::Timeout(timeout)))
    }

    async fn exchange(&self) -> Result<u16, HttpError> {
        let authority = self.authority();
        let tcp = TcpStream::connect((self.host, self.port))
            .await
            .map_err(|e| HttpError::Connect(authority.clone(), e))?;
        if self.https {
            let name = ServerName::try_from(self.host.to_string())
                .map_err(|e| HttpError::Request(format!("server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| classify_tls(&authority, e))?;
            self.over(TokioIo::new(tls), &authority).await
        } else {
            self.over(TokioIo::new(tcp), &authority).await
        }
    }

    async fn over<T>(&self, io: T, authority: &str) -> Result<u16, HttpError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended");
            }
        });
        let mut req = hyper::Request::get(self.path).header("host", authority);
        let mut has_agent = false;
        for (name, value) in self.headers {
            has_agent |= name.eq_ignore_ascii_case("user-agent");
            req = req.header(name.as_str(), value.as_str());
        }
        if !has_agent {
            req = req.header(
                "user-agent",
                concat!("podstart/", env!("CARGO_PKG_VERSION")),
            );
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut read = 0usize;
        while read < MAX_BODY_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
        driver.abort();
        Ok(status)
    }
}

/// A TLS handshake that failed because the first bytes were not a TLS
/// record but text (an HTTP answer) is the kubelet's fallback case.
fn classify_tls(authority: &str, e: std::io::Error) -> HttpError {
    let plain = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if plain {
        HttpError::PlainHttpAnswer
    } else {
        HttpError::Tls(authority.to_string(), e)
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Request(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts every server certificate (InsecureSkipVerify), checking only that
/// handshake signatures are well-formed.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
