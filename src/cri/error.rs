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
}
