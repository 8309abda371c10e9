//! podstart's Prometheus metrics: one registry, created once and passed down.
//! Names follow the kubelet's (`kubelet_runtime_operations_*` →
//! `podstart_runtime_operations_*`); labels never carry pod, container or
//! image names.
use std::{sync::Arc, time::Duration};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The kubelet's pod start buckets (`kubelet_pod_start_duration_seconds`).
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The kubelet's image pull buckets (`kubelet_image_pull_duration_seconds`).
const IMAGE_PULL_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0, 600.0, 900.0,
    1200.0, 1800.0, 2700.0, 3600.0,
];

/// The kubelet's image size label for a pull.
pub fn size_bucket(bytes: u64) -> &'static str {
    const MB: u64 = 1_000_000;
    const GB: u64 = 1_000 * MB;
    match bytes {
        0 => "N/A",
        b if b < 10 * MB => "0-10MB",
        b if b < 100 * MB => "10MB-100MB",
        b if b < 500 * MB => "100MB-500MB",
        b if b < GB => "500MB-1GB",
        b if b < 5 * GB => "1GB-5GB",
        b if b < 10 * GB => "5GB-10GB",
        b if b < 20 * GB => "10GB-20GB",
        b if b < 50 * GB => "20GB-50GB",
        b if b < 100 * GB => "50GB-100GB",
        _ => "GT100GB",
    }
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    runtime_operations: IntCounterVec,
    runtime_operation_duration: HistogramVec,
    runtime_operation_errors: IntCounterVec,
    started_pods: prometheus::IntCounter,
    started_pods_errors: IntCounterVec,
    started_containers: IntCounterVec,
    started_containers_errors: IntCounterVec,
    pod_start_duration: Histogram,
    pod_start_sli_duration: Histogram,
    image_pull_duration: HistogramVec,
    image_pull_bytes: prometheus::IntCounter,
    runtime_retries: IntCounterVec,
    grpc_handled: IntCounterVec,
    in_flight_starts: IntGauge,
    runtime_ready: IntGauge,
    runtime_unready: IntGaugeVec,
    events_dropped: IntCounterVec,
    authz_denied: IntCounterVec,
    start_attached: prometheus::IntCounter,
    pleg: PlegFamilies,
}

/// The node watcher's families (`pleg/`).
struct PlegFamilies {
    relist_duration: Histogram,
    containers: IntGauge,
    source: IntGaugeVec,
}

impl PlegFamilies {
    fn new(registry: &Registry) -> Result<PlegFamilies, prometheus::Error> {
        let relist_duration = Histogram::with_opts(
            HistogramOpts::new(
                "pleg_relist_duration_seconds",
                "Duration of one relist of the node's containers.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.5, 12)?),
        )?;
        let containers = IntGauge::new(
            "pleg_containers",
            "Containers on the node, as the last relist and events saw them.",
        )?;
        let source = IntGaugeVec::new(
            Opts::new(
                "container_events_source",
                "1 for the source of container state changes in use: cri, containerd or relist.",
            ),
            &["source"],
        )?;
        registry.register(Box::new(relist_duration.clone()))?;
        registry.register(Box::new(containers.clone()))?;
        registry.register(Box::new(source.clone()))?;
        Ok(PlegFamilies {
            relist_duration,
            containers,
            source,
        })
    }
}

impl Metrics {
    // Long: every metric family, declared and registered in one list.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("podstart".into()), None)?;
        let runtime_operations = IntCounterVec::new(
            Opts::new("runtime_operations_total", "CRI operations by type."),
            &["operation_type"],
        )?;
        let runtime_operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "runtime_operations_duration_seconds",
                "Duration of CRI operations by type.",
            )
            .buckets(prometheus::exponential_buckets(0.005, 2.5, 14)?),
            &["operation_type"],
        )?;
        let runtime_operation_errors = IntCounterVec::new(
            Opts::new(
                "runtime_operations_errors_total",
                "Failed CRI operations by type and gRPC code.",
            ),
            &["operation_type", "code"],
        )?;
        let started_pods = prometheus::IntCounter::new(
            "started_pods_total",
            "StartPod requests that reached the runtime.",
        )?;
        let started_pods_errors = IntCounterVec::new(
            Opts::new("started_pods_errors_total", "StartPod failures by reason."),
            &["reason"],
        )?;
        let started_containers = IntCounterVec::new(
            Opts::new(
                "started_containers_total",
                "Container start attempts by container type.",
            ),
            &["container_type"],
        )?;
        let started_containers_errors = IntCounterVec::new(
            Opts::new(
                "started_containers_errors_total",
                "Container start failures by container type and reason.",
            ),
            &["container_type", "code"],
        )?;
        let pod_start_duration = Histogram::with_opts(
            HistogramOpts::new(
                "pod_start_duration_seconds",
                "Time from StartPod received to every container started.",
            )
            .buckets(POD_START_BUCKETS.to_vec()),
        )?;
        let pod_start_sli_duration = Histogram::with_opts(
            HistogramOpts::new(
                "pod_start_sli_duration_seconds",
                "Pod start time excluding image pulls and init containers (the kubelet's SLI).",
            )
            .buckets(POD_START_BUCKETS.to_vec()),
        )?;
        let image_pull_duration = HistogramVec::new(
            HistogramOpts::new(
                "image_pull_duration_seconds",
                "Image pull time, waiting included, by image size bucket.",
            )
            .buckets(IMAGE_PULL_BUCKETS.to_vec()),
            &["image_size_in_bytes"],
        )?;
        let image_pull_bytes =
            prometheus::IntCounter::new("image_pull_bytes_total", "Bytes of images pulled.")?;
        let runtime_retries = IntCounterVec::new(
            Opts::new("runtime_retries_total", "CRI calls retried, by operation."),
            &["operation_type"],
        )?;
        let grpc_handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "podstart API calls completed, by service, method and gRPC code.",
            ),
            &["grpc_service", "grpc_method", "grpc_code"],
        )?;
        let in_flight_starts = IntGauge::new(
            "start_pod_in_flight",
            "StartPod requests being carried out.",
        )?;
        let authz_denied = IntCounterVec::new(
            Opts::new(
                "authz_denied_total",
                "API requests refused by the authorization policy, by verb \
                 (start, stop, read, watch).",
            ),
            &["verb"],
        )?;
        let events_dropped = IntCounterVec::new(
            Opts::new(
                "events_dropped_total",
                "Events a caller's stream did not get: slow_reader (progress events \
                 dropped while its buffer was filling), disconnected (after the caller \
                 was cut off for not reading).",
            ),
            &["reason"],
        )?;
        let start_attached = prometheus::IntCounter::new(
            "start_attached_total",
            "StartPods that attached to an identical start of the same pod in flight \
             instead of starting it again.",
        )?;
        let runtime_ready = IntGauge::new(
            "runtime_ready",
            "1 when the CRI runtime answers and reports RuntimeReady.",
        )?;
        let runtime_unready = IntGaugeVec::new(
            Opts::new(
                "runtime_unready",
                "1 for the reason podstart reports not ready, 0 for the others: \
                 unreachable (CRI Version fails), runtime_not_ready (Status fails or \
                 lacks RuntimeReady), timeouts (calls of one operation time out in a \
                 row), saturated (calls wait too long for a concurrency slot).",
            ),
            &["reason"],
        )?;
        for reason in RUNTIME_UNREADY_REASONS {
            runtime_unready.with_label_values(&[reason]).set(0);
        }
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "podstart build information."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        registry.register(Box::new(runtime_operations.clone()))?;
        registry.register(Box::new(runtime_operation_duration.clone()))?;
        registry.register(Box::new(runtime_operation_errors.clone()))?;
        registry.register(Box::new(started_pods.clone()))?;
        registry.register(Box::new(started_pods_errors.clone()))?;
        registry.register(Box::new(started_containers.clone()))?;
        registry.register(Box::new(started_containers_errors.clone()))?;
        registry.register(Box::new(pod_start_duration.clone()))?;
        registry.register(Box::new(pod_start_sli_duration.clone()))?;
        registry.register(Box::new(image_pull_duration.clone()))?;
        registry.register(Box::new(image_pull_bytes.clone()))?;
        registry.register(Box::new(runtime_retries.clone()))?;
        registry.register(Box::new(grpc_handled.clone()))?;
        registry.register(Box::new(in_flight_starts.clone()))?;
        registry.register(Box::new(runtime_ready.clone()))?;
        registry.register(Box::new(runtime_unready.clone()))?;
        registry.register(Box::new(events_dropped.clone()))?;
        registry.register(Box::new(authz_denied.clone()))?;
        registry.register(Box::new(start_attached.clone()))?;
        registry.register(Box::new(build_info))?;
        let pleg = PlegFamilies::new(&registry)?;
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                runtime_operations,
                runtime_operation_duration,
                runtime_operation_errors,
                started_pods,
                started_pods_errors,
                started_containers,
                started_containers_errors,
                pod_start_duration,
                pod_start_sli_duration,
                image_pull_duration,
                image_pull_bytes,
                runtime_retries,
                grpc_handled,
                in_flight_starts,
                runtime_ready,
                runtime_unready,
                events_dropped,
                authz_denied,
                pleg,
                start_attached,
            }),
        })
    }

    pub fn record_runtime_operation(&self, op: &str, code: tonic::Code, took: Duration) {
        let m = &self.inner;
        m.runtime_operations.with_label_values(&[op]).inc();
        m.runtime_operation_duration
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
        if code != tonic::Code::Ok {
            m.runtime_operation_errors
                .with_label_values(&[op, &format!("{code:?}")])
                .inc();
        }
    }

    pub fn pod_start_attempted(&self) {
        self.inner.started_pods.inc();
    }

    pub fn pod_start_failed(&self, reason: &str) {
        self.inner
            .started_pods_errors
            .with_label_values(&[reason])
            .inc();
    }

    pub fn pod_started(&self, took: Duration) {
        self.inner.pod_start_duration.observe(took.as_secs_f64());
    }

    /// A started pod's time without image pulls and init containers.
    pub fn pod_started_sli(&self, took: Duration) {
        self.inner
            .pod_start_sli_duration
            .observe(took.as_secs_f64());
    }

    /// A completed pull: its time (waiting included) and the image's size.
    pub fn image_pulled(&self, size_bytes: u64, took: Duration) {
        self.inner
            .image_pull_duration
            .with_label_values(&[size_bucket(size_bytes)])
            .observe(took.as_secs_f64());
        self.inner.image_pull_bytes.inc_by(size_bytes);
    }

    pub fn runtime_retry(&self, op: &str) {
        self.inner.runtime_retries.with_label_values(&[op]).inc();
    }

    pub fn grpc_handled(&self, service: &str, method: &str, code: tonic::Code) {
        self.inner
            .grpc_handled
            .with_label_values(&[service, method, &format!("{code:?}")])
            .inc();
    }

    pub fn container_start_attempted(&self, container_type: &str) {
        self.inner
            .started_containers
            .with_label_values(&[container_type])
            .inc();
    }

    pub fn container_start_failed(&self, container_type: &str, reason: &str) {
        self.inner
            .started_containers_errors
            .with_label_values(&[container_type, reason])
            .inc();
    }

    /// Counts one StartPod in flight until the guard drops.
    pub fn start_in_flight(&self) -> InFlight {
        self.inner.in_flight_starts.inc();
        InFlight(self.inner.in_flight_starts.clone())
    }

    /// One event a caller's stream did not get, by reason.
    pub fn event_dropped(&self, reason: &str) {
        self.inner.events_dropped.with_label_values(&[reason]).inc();
    }

    /// One API request the authorization policy refused.
    pub fn authz_denied(&self, verb: &str) {
        self.inner.authz_denied.with_label_values(&[verb]).inc();
    }

    /// One relist of the node's containers took `took` and found `count`.
    pub fn pleg_relisted(&self, took: Duration, count: usize) {
        let pleg = &self.inner.pleg;
        pleg.relist_duration.observe(took.as_secs_f64());
        pleg.containers
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The source of container state changes now in use.
    pub fn set_pleg_source(&self, source: &'static str) {
        let families = &self.inner.pleg.source;
        for name in ["cri", "containerd", "relist"] {
            families
                .with_label_values(&[name])
                .set(i64::from(name == source));
        }
    }

    /// One StartPod attached to a start in flight.
    pub fn start_attached(&self) {
        self.inner.start_attached.inc();
    }

    pub fn set_runtime_ready(&self, ready: bool) {
        self.inner.runtime_ready.set(i64::from(ready));
    }

    /// Why podstart is not ready (one of `RUNTIME_UNREADY_REASONS`), or
    /// None when it is.
    pub fn set_runtime_unready(&self, reason: Option<&str>) {
        for r in RUNTIME_UNREADY_REASONS {
            self.inner
                .runtime_unready
                .with_label_values(&[r])
                .set(i64::from(reason == Some(r)));
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let families = self.inner.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The fixed label set of `podstart_runtime_unready`.
const RUNTIME_UNREADY_REASONS: [&str; 4] =
    ["unreachable", "runtime_not_ready", "timeouts", "saturated"];

pub struct InFlight(IntGauge);

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InFlight").field(&self.0.get()).finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_operations_with_codes_and_no_ids() {
        let m = Metrics::new().unwrap();
        m.record_runtime_operation("run_podsandbox", tonic::Code::Ok, Duration::from_millis(20));
        m.record_runtime_operation(
            "run_podsandbox",
            tonic::Code::Unknown,
            Duration::from_millis(5),
        );
        let text = m.encode();
        assert!(
            text.contains("podstart_runtime_operations_total{operation_type=\"run_podsandbox\"} 2")
        );
        assert!(text.contains(
            "podstart_runtime_operations_errors_total{code=\"Unknown\",operation_type=\"run_podsandbox\"} 1"
        ));
        assert!(text.contains("podstart_build_info{version="));
    }

    #[test]
    fn image_sizes_fall_in_the_kubelet_buckets() {
        assert_eq!(size_bucket(0), "N/A");
        assert_eq!(size_bucket(1_088_857), "0-10MB");
        assert_eq!(size_bucket(20_000_000), "10MB-100MB");
        assert_eq!(size_bucket(2_000_000_000), "1GB-5GB");
        assert_eq!(size_bucket(200_000_000_000), "GT100GB");
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let m = Metrics::new().unwrap();
        let a = m.start_in_flight();
        let b = m.start_in_flight();
        assert!(m.encode().contains("podstart_start_pod_in_flight 2"));
        drop(a);
        drop(b);
        assert!(m.encode().contains("podstart_start_pod_in_flight 0"));
    }
}
