//! The CRI client's errors: one variant per way a runtime call can fail.
use std::time::Duration;

use tonic::Code;

use crate::endpoint::EndpointError;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The configured endpoint is not a unix socket path or http URL.
    #[error(transparent)]
    InvalidEndpoint(#[from] EndpointError),
    /// The call failed with this status: the runtime's answer, or tonic's
    /// when the call never got an answer (the status's source says why).
    #[error("{}", .status.message())]
    Call {
        op: &'static str,
        #[source]
        status: tonic::Status,
    },
    /// The call did not finish within its deadline.
    #[error("CRI {op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    /// The runtime answered OK but left out something the call must return.
    #[error("CRI {op} returned no {missing}")]
    InvalidResponse {
        op: &'static str,
        missing: &'static str,
    },
}

impl CriError {
    /// The gRPC code this failure is reported with.
    pub fn code(&self) -> Code {
        match self {
            CriError::InvalidEndpoint { .. } => Code::InvalidArgument,
            CriError::Call { status, .. } => status.code(),
            CriError::Timeout { .. } => Code::DeadlineExceeded,
            CriError::InvalidResponse { .. } => Code::Internal,
        }
    }

    /// The CRI operation that failed, in the kubelet's metric spelling.
    pub fn operation(&self) -> &'static str {
        match self {
            CriError::InvalidEndpoint { .. } => "connect",
            CriError::Call { op, .. }
            | CriError::Timeout { op, .. }
            | CriError::InvalidResponse { op, .. } => op,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NotFound
    }

    /// The request never reached the runtime: the channel could not
    /// connect. tonic reports that as UNAVAILABLE with a
    /// `tonic::ConnectError` in the status's source chain; an UNAVAILABLE
    /// the runtime itself sent has no source, whatever its message says.
    pub fn is_connect_failure(&self) -> bool {
        match self {
            CriError::Call { status, .. } if status.code() == Code::Unavailable => {
                std::iter::successors(std::error::Error::source(status), |e| e.source())
                    .any(|e| e.is::<tonic::ConnectError>())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::cri::{Cri, CriSettings};
    use crate::endpoint::Address;
    use crate::telemetry::Metrics;

    /// What a Version call through a real channel to `socket` fails with.
    async fn version_error(socket: std::path::PathBuf) -> CriError {
        let addr = Address::Unix(socket);
        let settings = CriSettings {
            bare: true,
            ..CriSettings::default()
        };
        let cri = Cri::new(&addr, &addr, settings, Metrics::new().unwrap()).unwrap();
        cri.version().await.unwrap_err()
    }

    #[tokio::test]
    async fn a_missing_or_refusing_socket_is_a_connect_failure() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock");
        // A socket file nobody listens on any more: connect is refused.
        let refusing = dir.path().join("refusing.sock");
        drop(std::os::unix::net::UnixListener::bind(&refusing).unwrap());
        for socket in [missing, refusing] {
            let err = version_error(socket).await;
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert!(err.is_connect_failure(), "{err:?}");
        }
    }

    #[test]
    fn an_unavailable_answer_is_not_a_connect_failure_whatever_it_says() {
        let answered = CriError::Call {
            op: "start_container",
            status: tonic::Status::unavailable("connection error: Connection refused"),
        };
        assert!(!answered.is_connect_failure());
        let refused = CriError::Call {
            op: "start_container",
            status: tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(
                io::Error::from(io::ErrorKind::ConnectionRefused),
            )))),
        };
        assert_eq!(refused.code(), Code::Unavailable);
        assert!(refused.is_connect_failure());
    }
}
