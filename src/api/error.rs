//! The API's own refusals, before a request reaches the start flow: the
//! authorization policy's and admission's, each mapped to its gRPC code
//! here. Failures of the flow itself are `start::StartError`.
use tonic::{Code, Status};

use crate::admission::Refusal;
use crate::authz::Denied;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller may not use this verb in this namespace.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The pod (or ephemeral container) asks more than the caller's grant
    /// allows.
    #[error("{0}")]
    Refused(#[from] Refusal),
}

impl ApiError {
    pub fn code(&self) -> Code {
        match self {
            ApiError::Denied(_) => Code::PermissionDenied,
            ApiError::Refused(_) => Code::PermissionDenied,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}
