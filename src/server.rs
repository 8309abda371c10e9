//! `podstart serve`: wires the CRI client, the start flow, the gRPC API
//! (with health and reflection) and the metrics port; watches the runtime's
//! readiness; drains open streams on SIGTERM.
use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::api::PodStarterService;
use crate::api::metrics::GrpcMetricsLayer;
use crate::authz::Authorizer;
use crate::config::ServeArgs;
use crate::cri::{Cri, CriError, CriSettings, health::HealthSettings};
use crate::endpoint::{Address, EndpointError, Peer};
use crate::images::{PullBackoff, Puller, PullerConfig};
use crate::listen::{ListenAddr, ListenConfig, ListenError, TlsFiles};
use crate::node::{self, Node};
use crate::pleg::PlegConfig;
use crate::start::{FlowConfig, Parts, Starter, backoff::CrashLoopBackoff};
use crate::telemetry::{self, Metrics, Readiness};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Runtime(#[from] CriError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("simulated runtime: {0}")]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Authz(#[from] crate::authz::PolicyError),
}

/// Name of the gRPC health entry for the PodStarter service.
const SERVICE_NAME: &str = "podstart.v1.PodStarter";

// Long: the composition root, in start-up then shutdown order.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));

    let metrics = Metrics::new()?;
    // A policy that does not parse stops podstart before anything starts.
    let authz = Authorizer::new(
        args.authz_policy.as_deref(),
        args.allowed_registries.clone(),
    )?;
    authz.spawn_reload(crate::authz::RELOAD_PERIOD, shutdown.clone());
    // A built-in simulated runtime outlives the drain: it stops last.
    let sim_stop = CancellationToken::new();
    let _sim_stop_on_exit = sim_stop.clone().drop_guard();
    let (runtime_addr, _sim) = runtime_address(&args.runtime_endpoint, &sim_stop).await?;
    let image_addr = match &args.image_endpoint {
        Some(e) if args.runtime_endpoint != "sim" => Address::parse(e, Peer::Image)?,
        _ => runtime_addr.clone(),
    };
    let cri = Cri::new(
        &runtime_addr,
        &image_addr,
        CriSettings {
            request_timeout: args.runtime_request_timeout,
            max_concurrency: args.runtime_max_concurrency,
            health: HealthSettings {
                timeouts_in_a_row: args.unready_after_timeouts,
                slot_wait: args.unready_after_slot_wait,
                ..HealthSettings::default()
            },
            ..CriSettings::default()
        },
        metrics.clone(),
    )?;
    let starter = Starter::new(start_parts(
        &args,
        cri.clone(),
        (&runtime_addr, &image_addr),
        metrics.clone(),
    ));

    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let (ready_tx, ready_rx) = watch::channel(Readiness::NotReady(
        "the CRI runtime was not probed yet".into(),
    ));
    tokio::spawn(watch_runtime(
        cri,
        runtime_addr.clone(),
        reporter.clone(),
        metrics.clone(),
        ready_tx,
        shutdown.clone(),
    ));

    // The pods a previous podstart left are taken up once the runtime
    // answers; serving does not wait for it (a request for a pod being
    // recovered waits on the pod's lock).
    tokio::spawn(recover(starter.clone(), ready_rx.clone(), shutdown.clone()));

    {
        let token = shutdown.clone();
        let (addr, m, r) = (args.metrics_listen, metrics.clone(), ready_rx);
        tokio::spawn(async move {
            if let Err(e) = telemetry::serve_http(addr, m, r, token.cancelled_owned()).await {
                tracing::error!(%addr, error = %e, "metrics server failed");
            }
        });
    }

    let listeners = crate::listen::bind(&listen_config(&args)?).await?;
    let listening = listeners.addresses();
    let unix_paths = listeners.unix_paths();
    // Both reflection versions: grpcurl asks for v1alpha when v1 is absent.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let tasks = TaskTracker::new();
    let service = PodStarterService::new(starter.clone(), tasks.clone())
        .max_concurrent_starts(args.max_concurrent_starts)
        .authorizer(authz);
    tracing::info!(
        listen = ?listening,
        runtime = %runtime_addr,
        image = %image_addr,
        pod_log_root = %args.pod_log_root.display(),
        "podstart serving"
    );

    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            // Each API call counted by method and final code, and traced.
            .layer(GrpcMetricsLayer::new(metrics.clone()))
            .layer(tower_http::trace::TraceLayer::new_for_grpc().make_span_with(request_span))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            // Requests above `api::MAX_REQUEST_BYTES` are refused.
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                listeners.incoming(server_shutdown.clone()),
                server_shutdown.cancelled_owned(),
            ),
    );

    shutdown.cancelled().await;
    tracing::info!(open = tasks.len(), grace = ?args.shutdown_grace, "shutting down: draining open streams");
    set_health(&reporter, ServingStatus::NotServing).await;
    tasks.close();
    if tokio::time::timeout(args.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "grace period over: cancelling what is left"
        );
        starter.cancel_all();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    }
    // Every stream is drained; idle client connections need not hold the
    // exit up for long.
    match tokio::time::timeout(Duration::from_secs(1), server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::error!(error = %join, "gRPC server task failed"),
        Err(_) => tracing::debug!("idle client connections still open at exit"),
    }
    // Our sockets, unless something replaced them meanwhile.
    for path in unix_paths {
        if std::fs::symlink_metadata(&path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    tracing::info!("podstart stopped");
    Ok(())
}

/// Each API call's span: its path and who called (never a payload).
fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    let caller = req
        .extensions()
        .get::<crate::listen::Caller>()
        .map_or_else(|| "unknown".to_string(), ToString::to_string);
    tracing::info_span!("grpc_request", path = %req.uri().path(), %caller)
}

/// The node as the flags and the machine describe it.
fn node(args: &ServeArgs) -> Node {
    let machine = Node::default();
    let ips: Vec<String> = if args.node_ip.is_empty() {
        node::default_route_ips()
    } else {
        args.node_ip.iter().map(ToString::to_string).collect()
    };
    if ips.is_empty() {
        tracing::warn!("no --node-ip and no default route: status.hostIP reads as empty");
    }
    let allocatable = machine.capacity.minus(args.system_reserved);
    let name = args.node_name.clone().unwrap_or(machine.name);
    tracing::info!(
        node = %name,
        ips = ?ips,
        cpu_millis = allocatable.cpu_millis,
        memory_bytes = allocatable.memory_bytes,
        "the node's name, IPs and allocatable amounts"
    );
    Node {
        name,
        ips,
        allocatable,
        oom_score_adj_floor: args
            .restrict_oom_score_adj
            .then(|| node::own_oom_score_adj().max(0)),
        capacity: machine.capacity,
    }
}

/// The start flow's parts, each built with its own share of the command
/// line.
fn start_parts(
    args: &ServeArgs,
    cri: Cri,
    (runtime_addr, image_addr): (&Address, &Address),
    metrics: Metrics,
) -> Parts {
    let puller = Puller::new(
        cri.clone(),
        PullerConfig {
            max_parallel: args.max_parallel_image_pulls,
            stall_timeout: args.image_pull_stall_timeout,
            sample_interval: args.image_pull_progress_interval,
            // containerd serves its content service on the CRI socket.
            content_endpoint: Some(image_addr.clone()),
        },
    );
    Parts {
        cri,
        config: FlowConfig {
            pod_log_root: args.pod_log_root.clone(),
            hook_timeout: args.hook_timeout,
            pod_state_root: args.pod_state_root.clone(),
            pod_volume_root: args.pod_volume_root.clone(),
            node: Arc::new(node(args)),
        },
        metrics,
        puller,
        pull_backoff: PullBackoff::new(args.image_pull_backoff, args.image_pull_backoff_max),
        crash_loop: CrashLoopBackoff::new(args.restart_backoff, args.restart_backoff_max),
        pleg: PlegConfig {
            source: args.container_events,
            relist_period: args.relist_period,
            events_relist_period: args.events_relist_period,
            // containerd serves its events service on the CRI socket.
            containerd: matches!(runtime_addr, Address::Unix(_)).then(|| runtime_addr.clone()),
        },
    }
}

/// The runtime to talk to; `sim` starts the built-in simulated runtime on a
/// private socket (kept alive by the returned guard).
async fn runtime_address(
    endpoint: &str,
    shutdown: &CancellationToken,
) -> Result<(Address, Option<tempfile::TempDir>), ServeError> {
    if endpoint != "sim" {
        return Ok((Address::parse(endpoint, Peer::Runtime)?, None));
    }
    let dir = tempfile::Builder::new()
        .prefix("podstart-sim")
        .tempdir()
        .map_err(|source| ServeError::Bind {
            path: std::env::temp_dir(),
            source,
        })?;
    let path = dir.path().join("runtime.sock");
    let sim = crate::sim::SimRuntime::new(crate::sim::SimConfig::default());
    let token = shutdown.clone();
    let sock = path.clone();
    tokio::spawn(async move {
        if let Err(e) = sim.serve_unix(&sock, token.cancelled_owned()).await {
            tracing::error!(error = %e, "simulated runtime failed");
        }
    });
    // Wait until the socket exists so the first call does not race it.
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(socket = %path.display(), "serving against the built-in simulated runtime");
    Ok((Address::Unix(path), Some(dir)))
}

/// The listeners' share of the command line; user and group names in
/// `--listen` are looked up in /etc/passwd and /etc/group.
fn listen_config(args: &ServeArgs) -> Result<ListenConfig, ServeError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let addrs = args
        .listen
        .iter()
        .map(|l| ListenAddr::parse(l, &passwd, &group))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ListenError::from)?;
    let tls = match (
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.client_ca_file,
    ) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: ca.clone(),
        }),
        _ => None,
    };
    Ok(ListenConfig {
        addrs,
        tls,
        insecure_tcp: args.insecure_tcp,
    })
}

/// How long the readiness probe (Version, then Status) may take.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Why podstart reports not ready: a fixed label for the gauge and one line
/// for `/readyz` and the log.
#[derive(Debug)]
struct Unready {
    label: &'static str,
    why: String,
}

/// Follows the runtime: polls CRI Version and Status (each with a short
/// deadline) and reads the stack's health (calls timing out, calls waiting
/// for a slot); reports readiness through gRPC health, `/readyz` and the
/// gauges, and keeps trying (never exits) while the runtime is away.
async fn watch_runtime(
    cri: Cri,
    addr: Address,
    reporter: HealthReporter,
    metrics: Metrics,
    ready_tx: watch::Sender<Readiness>,
    shutdown: CancellationToken,
) {
    let probe = cri.with_request_timeout(PROBE_DEADLINE);
    let mut found = false;
    let mut out = Published {
        reporter,
        metrics,
        ready_tx,
        was: None,
    };
    let tracked = || {
        cri.health()
            .verdict(std::time::Instant::now())
            .map_err(|u| Unready {
                label: u.label(),
                why: u.to_string(),
            })
    };
    loop {
        let log_conditions = out.was.is_none_or(|l| !l.is_empty());
        let probing = tokio::time::timeout(
            PROBE_DEADLINE,
            probe_runtime(&probe, &addr, &mut found, log_conditions),
        );
        tokio::pin!(probing);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + TRACK_EVERY, TRACK_EVERY);
        let probed = loop {
            tokio::select! {
                probed = &mut probing => break probed.unwrap_or_else(|_| Err(Unready {
                    label: "timeouts",
                    why: format!(
                        "CRI runtime did not answer Version and Status within {}",
                        crate::duration::go(PROBE_DEADLINE)
                    ),
                })),
                // While the probe waits (for a slot, say), what the stack
                // sees still counts.
                _ = tick.tick() => if let Err(t) = tracked() {
                    out.publish(Err(t)).await;
                },
            }
        };
        let verdict = decide(probed, tracked());
        // Ready: the next probe in 2s, the stack read every second till
        // then. Not ready: the next probe in a second.
        let ticks = if verdict.is_ok() { 2 } else { 1 };
        out.publish(verdict).await;
        for tick in 1..=ticks {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TRACK_EVERY) => {}
            }
            if tick < ticks
                && let Err(t) = tracked()
            {
                out.publish(Err(t)).await;
                break;
            }
        }
    }
}

/// The probe's answer and the stack's verdict as one: the runtime's own
/// answer first; a timed-out probe is better explained by what the stack
/// saw (a saturated connection, an operation timing out).
fn decide(probed: Result<(), Unready>, tracked: Result<(), Unready>) -> Result<(), Unready> {
    match (probed, tracked) {
        (Err(p), Err(t)) if p.label == "timeouts" => Err(t),
        (Err(p), _) => Err(p),
        (Ok(()), tracked) => tracked,
    }
}

/// How often the stack's health is read while a probe is under way, and
/// how often the probe runs while not ready.
const TRACK_EVERY: Duration = Duration::from_secs(1);

/// Where readiness is reported: gRPC health, `/readyz`, the gauges and the
/// log (once per change of reason).
struct Published {
    reporter: HealthReporter,
    metrics: Metrics,
    ready_tx: watch::Sender<Readiness>,
    /// The label of the last verdict ("" when ready), None before the first.
    was: Option<&'static str>,
}

impl Published {
    async fn publish(&mut self, verdict: Result<(), Unready>) {
        let label = verdict.as_ref().err().map_or("", |u| u.label);
        let ready = verdict.is_ok();
        let readiness = match verdict {
            Ok(()) => Readiness::Ready,
            Err(u) => Readiness::NotReady(u.why),
        };
        if self.was != Some(label) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&self.reporter, status).await;
            self.metrics.set_runtime_ready(ready);
            self.metrics.set_runtime_unready((!ready).then_some(label));
            match &readiness {
                Readiness::Ready if self.was.is_some() => tracing::info!("runtime ready again"),
                Readiness::Ready => {}
                Readiness::NotReady(why) => {
                    tracing::warn!(reason = label, %why, "reporting not ready")
                }
            }
            self.was = Some(label);
        }
        // The reason's text (a wait, a count) may change under one label.
        self.ready_tx.send_if_modified(|r| {
            let changed = *r != readiness;
            *r = readiness;
            changed
        });
    }
}

/// One readiness probe: CRI Version (logging what the runtime is, once),
/// then Status and its RuntimeReady condition (logging the conditions when
/// `log_conditions`).
async fn probe_runtime(
    cri: &Cri,
    addr: &Address,
    found: &mut bool,
    log_conditions: bool,
) -> Result<(), Unready> {
    let v = cri.version().await.map_err(|e| Unready {
        label: timed_out_or(&e, "unreachable"),
        why: format!("CRI runtime {addr} unreachable: {e}"),
    })?;
    if !*found {
        tracing::info!(
            runtime = %addr,
            name = %v.runtime_name,
            version = %v.runtime_version,
            api = %v.runtime_api_version,
            "CRI runtime found"
        );
        *found = true;
    }
    let s = cri.status().await.map_err(|e| Unready {
        label: timed_out_or(&e, "runtime_not_ready"),
        why: format!("CRI Status failed: {e}"),
    })?;
    let conditions = s.status.map(|st| st.conditions).unwrap_or_default();
    let runtime_ready = conditions
        .iter()
        .any(|c| c.r#type == "RuntimeReady" && c.status);
    if log_conditions {
        for c in &conditions {
            tracing::info!(condition = %c.r#type, status = c.status, reason = %c.reason, message = %c.message, "runtime condition");
        }
    }
    if runtime_ready {
        Ok(())
    } else {
        Err(Unready {
            label: "runtime_not_ready",
            why: "the CRI runtime does not report RuntimeReady".to_string(),
        })
    }
}

/// "timeouts" for a call that ran out of time, else `label`.
fn timed_out_or(e: &CriError, label: &'static str) -> &'static str {
    match e {
        CriError::Timeout { .. } => "timeouts",
        _ => label,
    }
}

/// Runs `Starter::recover` once the runtime is ready; a failed sandbox
/// list is tried again when the runtime is next ready.
async fn recover(
    starter: Starter,
    mut ready: watch::Receiver<Readiness>,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = ready.wait_for(|r| *r == Readiness::Ready) => if r.is_err() { return },
        }
        match starter.recover().await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "recovery could not list the node's pods; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Sets the gRPC health of the PodStarter service and of the server as a
/// whole (the empty name), which always agree.
async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status(SERVICE_NAME, status).await;
    reporter.set_service_status("", status).await;
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unready(label: &'static str) -> Result<(), Unready> {
        Err(Unready {
            label,
            why: label.to_string(),
        })
    }

    #[test]
    fn the_runtime_answer_comes_first_and_a_timed_out_probe_defers_to_the_stack() {
        let label = |r: Result<(), Unready>| r.err().map_or("ready", |u| u.label);
        let cases = [
            (Ok(()), Ok(()), "ready"),
            (Ok(()), unready("saturated"), "saturated"),
            (unready("unreachable"), Ok(()), "unreachable"),
            (unready("unreachable"), unready("timeouts"), "unreachable"),
            (
                unready("runtime_not_ready"),
                unready("saturated"),
                "runtime_not_ready",
            ),
            (unready("timeouts"), unready("saturated"), "saturated"),
            (unready("timeouts"), Ok(()), "timeouts"),
        ];
        for (probed, tracked, want) in cases {
            assert_eq!(label(decide(probed, tracked)), want);
        }
    }
}
