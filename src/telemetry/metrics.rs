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

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
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
    in_flight_starts: IntGauge,
    runtime_ready: IntGauge,
}

impl Metrics {
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
        let in_flight_starts = IntGauge::new(
            "start_pod_in_flight",
            "StartPod requests being carried out.",
        )?;
        let runtime_ready = IntGauge::new(
            "runtime_ready",
            "1 when the CRI runtime answers and reports RuntimeReady.",
        )?;
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
        registry.register(Box::new(in_flight_starts.clone()))?;
        registry.register(Box::new(runtime_ready.clone()))?;
        registry.register(Box::new(build_info))?;
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
                in_flight_starts,
                runtime_ready,
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

    pub fn set_runtime_ready(&self, ready: bool) {
        self.inner.runtime_ready.set(i64::from(ready));
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

pub struct InFlight(IntGauge);

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
