//! Fault injection for the simulated runtime, per CRI method, set at start
//! (`SimConfig::faults`) or at run time (`SimRuntime::faults()`): added
//! latency, errors (every call, the next N, or with a probability), hangs,
//! answers held back after the work is done (an uncertain outcome for the
//! caller), and a runtime that dies and comes back. Works as a tower layer
//! in front of the CRI services, so the services themselves know nothing of
//! it.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::lock;

/// What goes wrong with one CRI method.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Waited before the call is served.
    pub latency: Duration,
    /// Answer with this code instead of serving the call.
    pub error: Option<tonic::Code>,
    /// The error's message (a default naming the fault when empty).
    pub message: String,
    /// Chance that a call gets the error (0 or unset: always).
    pub probability: f64,
    /// Only the next N calls get the error (None: all of them).
    pub times: Option<u32>,
    /// Never answer (before doing anything).
    pub hang: bool,
    /// Do the work, then hold the answer back this long: the caller may
    /// give up while the effect (a created container) stays.
    pub delay_after: Duration,
}

/// The faults in force. Cheap to clone; clones share the settings.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    by_method: Mutex<HashMap<String, Fault>>,
    down_until: Mutex<Option<Instant>>,
    hung: Mutex<HashMap<String, u64>>,
}

/// What to do with one call.
enum Decision {
    Serve {
        latency: Duration,
        delay_after: Duration,
    },
    Fail {
        latency: Duration,
        status: tonic::Status,
    },
    Hang,
}

impl Faults {
    /// Sets the fault of `method` (a CRI method name, e.g. "CreateContainer").
    pub fn set(&self, method: &str, fault: Fault) {
        lock(&self.inner.by_method).insert(method.to_string(), fault);
    }

    pub fn clear(&self, method: &str) {
        lock(&self.inner.by_method).remove(method);
    }

    pub fn clear_all(&self) {
        lock(&self.inner.by_method).clear();
        *lock(&self.inner.down_until) = None;
    }

    /// How many calls of `method` were held by a `hang` fault so far: a test
    /// knows the call reached the runtime before it lifts the fault.
    pub fn hung(&self, method: &str) -> u64 {
        lock(&self.inner.hung).get(method).copied().unwrap_or(0)
    }

    /// The runtime "dies": every call fails UNAVAILABLE as a refused
    /// connection would, until `for_how_long` has passed.
    pub fn down_for(&self, for_how_long: Duration) {
        *lock(&self.inner.down_until) = Some(Instant::now() + for_how_long);
    }

    fn decide(&self, method: &str) -> Decision {
        if let Some(until) = *lock(&self.inner.down_until)
            && Instant::now() < until
        {
            return Decision::Fail {
                latency: Duration::ZERO,
                status: tonic::Status::unavailable(
                    "connection error: Connection refused (podstart-sim: runtime down)",
                ),
            };
        }
        let mut faults = lock(&self.inner.by_method);
        let Some(fault) = faults.get_mut(method) else {
            return Decision::Serve {
                latency: Duration::ZERO,
                delay_after: Duration::ZERO,
            };
        };
        if fault.hang {
            *lock(&self.inner.hung)
                .entry(method.to_string())
                .or_default() += 1;
            return Decision::Hang;
        }
        if let Some(code) = fault.error {
            let counted = match &mut fault.times {
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
                None => true,
            };
            let lucky = fault.probability > 0.0 && fastrand::f64() >= fault.probability;
            if counted && !lucky {
                let message = if fault.message.is_empty() {
                    format!("podstart-sim: injected {code:?} for {method}")
                } else {
                    fault.message.clone()
                };
                return Decision::Fail {
                    latency: fault.latency,
                    status: tonic::Status::new(code, message),
                };
            }
        }
        Decision::Serve {
            latency: fault.latency,
            delay_after: fault.delay_after,
        }
    }
}

/// The layer that applies [`Faults`] to a gRPC server.
#[derive(Clone)]
pub(crate) struct FaultLayer {
    faults: Faults,
}

impl FaultLayer {
    pub(crate) fn new(faults: Faults) -> FaultLayer {
        FaultLayer { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct FaultService<S> {
    inner: S,
    faults: Faults,
}

impl<S, B> Service<http::Request<B>> for FaultService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let decision = self.faults.decide(&method);
        // The ready service serves this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match decision {
                Decision::Hang => std::future::pending().await,
                Decision::Fail { latency, status } => {
                    pause(latency).await;
                    Ok(status.into_http())
                }
                Decision::Serve {
                    latency,
                    delay_after,
                } => {
                    pause(latency).await;
                    let resp = inner.call(req).await;
                    pause(delay_after).await;
                    resp
                }
            }
        })
    }
}

/// Sleeps, unless `d` is zero: a zero-length tokio sleep still waits for
/// the timer's next tick (about a millisecond).
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(d: &Decision) -> bool {
        matches!(d, Decision::Serve { .. })
    }

    #[test]
    fn next_n_calls_fail_then_calls_pass() {
        let f = Faults::default();
        f.set(
            "Version",
            Fault {
                error: Some(tonic::Code::Unavailable),
                times: Some(2),
                ..Default::default()
            },
        );
        assert!(!served(&f.decide("Version")));
        assert!(!served(&f.decide("Version")));
        assert!(served(&f.decide("Version")));
        assert!(served(&f.decide("Status")), "other methods are untouched");
    }

    #[test]
    fn probability_fails_about_that_share() {
        let f = Faults::default();
        f.set(
            "ListContainers",
            Fault {
                error: Some(tonic::Code::Unavailable),
                probability: 0.5,
                ..Default::default()
            },
        );
        let failed = (0..1000)
            .filter(|_| !served(&f.decide("ListContainers")))
            .count();
        assert!((350..650).contains(&failed), "{failed}");
    }

    #[test]
    fn a_down_runtime_refuses_everything_until_it_returns() {
        let f = Faults::default();
        f.down_for(Duration::from_secs(60));
        assert!(!served(&f.decide("Version")));
        f.clear_all();
        assert!(served(&f.decide("Version")));
    }

    #[test]
    fn hang_is_reported() {
        let f = Faults::default();
        f.set(
            "PullImage",
            Fault {
                hang: true,
                ..Default::default()
            },
        );
        assert_eq!(f.hung("PullImage"), 0);
        assert!(matches!(f.decide("PullImage"), Decision::Hang));
        assert_eq!(f.hung("PullImage"), 1);
        assert_eq!(f.hung("Version"), 0);
    }
}
