//! How a pull fails: the runtime's answer to each credential tried (in
//! keyring order), or a stall that podstart itself cancelled — and what the
//! kubelet would call it (`ErrImagePull`, `RegistryUnavailable`) or, for a
//! registry that refused the credentials, an authentication failure.
//!
//! Messages name a credential only by its `server` pattern (never a user
//! name, password or token). Codes are assigned in `start::error`.
use std::{fmt, time::Duration};

use crate::cri::CriError;

/// One PullImage call.
#[derive(Debug)]
pub struct Attempt {
    /// The credential's server pattern; empty for an anonymous pull or a
    /// credential without a server.
    pub server: String,
    pub error: CriError,
}

/// What a failed pull is, in the kubelet's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailureKind {
    /// The registry answered 401 to every attempt.
    Unauthorized,
    /// The registry could not be reached (or the runtime said
    /// `RegistryUnavailable`, as CRI-O does).
    RegistryUnavailable,
    /// Anything else the runtime reported.
    ErrImagePull,
    /// No progress for too long; podstart cancelled the pull.
    Stalled,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Every PullImage call failed; one attempt per credential tried, or one
    /// anonymous attempt.
    #[error("{}", Attempts(.attempts))]
    Runtime { attempts: Vec<Attempt> },
    /// The pull made no progress for `after` and was cancelled.
    #[error(
        "pull cancelled: no progress for {} ({bytes_done} of {bytes_total} bytes received)",
        humantime::format_duration(*after)
    )]
    Stalled {
        after: Duration,
        bytes_done: u64,
        bytes_total: u64,
    },
}

/// Message prefixes meaning the registry is unreachable: the CRI's
/// `RegistryUnavailable` (the kubelet's rule) and Go's network errors as
/// containerd relays them.
const UNREACHABLE: &[&str] = &[
    "dial tcp",
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
];

impl PullError {
    pub fn kind(&self) -> PullFailureKind {
        match self {
            PullError::Stalled { .. } => PullFailureKind::Stalled,
            PullError::Runtime { attempts } => {
                if !attempts.is_empty() && attempts.iter().all(|a| is_unauthorized(&a.error)) {
                    PullFailureKind::Unauthorized
                } else if attempts.iter().any(|a| is_unreachable(&a.error)) {
                    PullFailureKind::RegistryUnavailable
                } else {
                    PullFailureKind::ErrImagePull
                }
            }
        }
    }

    /// The runtime's last answer, if the runtime answered.
    pub fn last_error(&self) -> Option<&CriError> {
        match self {
            PullError::Runtime { attempts } => attempts.last().map(|a| &a.error),
            PullError::Stalled { .. } => None,
        }
    }
}

fn is_unauthorized(e: &CriError) -> bool {
    let text = e.to_string();
    text.contains("401 Unauthorized") || e.code() == tonic::Code::Unauthenticated
}

fn is_unreachable(e: &CriError) -> bool {
    let text = e.to_string();
    text.starts_with("RegistryUnavailable") || UNREACHABLE.iter().any(|m| text.contains(m))
}

/// One attempt as is; several as the kubelet's aggregate, `[a, b]`, each
/// prefixed with the credential's server.
struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => write!(f, "no pull attempted"),
            [one] => write!(f, "{}", one.error),
            many => {
                write!(f, "[")?;
                for (i, a) in many.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    let server = if a.server.is_empty() {
                        "any registry"
                    } else {
                        &a.server
                    };
                    write!(f, "credential {} ({server}): {}", i + 1, a.error)?;
                }
                write!(f, "]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn call(code: Code, msg: &str) -> CriError {
        CriError::Call {
            op: "pull_image",
            status: Status::new(code, msg),
        }
    }

    fn attempt(server: &str, code: Code, msg: &str) -> Attempt {
        Attempt {
            server: server.into(),
            error: call(code, msg),
        }
    }

    #[test]
    fn kinds() {
        let unauthorized = "failed to pull and unpack image \"x\": pulling from host h failed with status code [manifests 1]: 401 Unauthorized";
        let e = PullError::Runtime {
            attempts: vec![
                attempt("h", Code::Unknown, unauthorized),
                attempt("", Code::Unknown, unauthorized),
            ],
        };
        assert_eq!(e.kind(), PullFailureKind::Unauthorized);
        assert!(
            e.to_string()
                .starts_with("[credential 1 (h): failed to pull")
        );
        assert!(e.to_string().contains(", credential 2 (any registry): "));

        let refused = PullError::Runtime {
            attempts: vec![attempt(
                "",
                Code::Unknown,
                "failed to do request: Head \"https://h/v2/x/manifests/1\": dial tcp 127.0.0.1:1: connect: connection refused",
            )],
        };
        assert_eq!(refused.kind(), PullFailureKind::RegistryUnavailable);
        let crio = PullError::Runtime {
            attempts: vec![attempt("", Code::Unknown, "RegistryUnavailable: down")],
        };
        assert_eq!(crio.kind(), PullFailureKind::RegistryUnavailable);
        let missing = PullError::Runtime {
            attempts: vec![attempt("", Code::NotFound, "not found")],
        };
        assert_eq!(missing.kind(), PullFailureKind::ErrImagePull);
        assert_eq!(missing.to_string(), "not found");
        let stalled = PullError::Stalled {
            after: Duration::from_secs(30),
            bytes_done: 10,
            bytes_total: 20,
        };
        assert_eq!(stalled.kind(), PullFailureKind::Stalled);
        assert_eq!(
            stalled.to_string(),
            "pull cancelled: no progress for 30s (10 of 20 bytes received)"
        );
    }
}
