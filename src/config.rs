//! The command line: every flag (and its environment variable) of every
//! subcommand. Nothing else in podstart reads the environment.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::TypedValueParser as _};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "podstart",
    version,
    about = "Starts pods on this node the way the kubelet does, over the CRI, and streams every step."
)]
pub struct Cli {
    /// Log level (an EnvFilter directive such as `info` or `podstart=debug`).
    #[arg(
        long,
        global = true,
        env = "PODSTART_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "PODSTART_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g.
    /// http://127.0.0.1:4317); off when unset.
    #[arg(long, global = true, env = "PODSTART_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The podstart API to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "PODSTART_ENDPOINT",
        default_value = "unix:///run/podstart/podstart.sock"
    )]
    pub endpoint: String,
    /// CA certificate (PEM) that an `https://` endpoint's certificate must
    /// chain to (client commands).
    #[arg(long, global = true, env = "PODSTART_CERTIFICATE_AUTHORITY")]
    pub certificate_authority: Option<PathBuf>,
    /// Client certificate (PEM) presented to an `https://` endpoint.
    #[arg(
        long,
        global = true,
        env = "PODSTART_CLIENT_CERTIFICATE",
        requires = "client_key"
    )]
    pub client_certificate: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(
        long,
        global = true,
        env = "PODSTART_CLIENT_KEY",
        requires = "client_certificate"
    )]
    pub client_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the podstart daemon.
    Serve(Box<ServeArgs>),
    /// Run a simulated CRI runtime (in memory) for tests and trials.
    SimRuntime(SimRuntimeArgs),
    /// Start the pod of a Kubernetes Pod manifest and follow it.
    Run(RunArgs),
    /// Stop and remove a pod.
    Stop(StopArgs),
    /// Show one pod as the node runs it.
    Get(GetArgs),
    /// List the pods podstart runs on this node.
    Ls(LsArgs),
    /// Follow every start and stop on the node.
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// CRI runtime endpoint; `sim` runs the built-in simulated runtime.
    #[arg(
        long,
        env = "PODSTART_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    pub runtime_endpoint: String,
    /// CRI image endpoint (defaults to the runtime endpoint).
    #[arg(long, env = "PODSTART_IMAGE_ENDPOINT")]
    pub image_endpoint: Option<String>,
    /// Where podstart's API listens; give it once per socket:
    /// `unix:///path[?mode=0660&owner=USER&group=GROUP]` or
    /// `tcp://HOST:PORT` (mutual TLS; see --tls-cert-file). The
    /// environment variable takes a comma-separated list.
    #[arg(
        long,
        env = "PODSTART_LISTEN",
        value_delimiter = ',',
        default_value = "unix:///run/podstart/podstart.sock"
    )]
    pub listen: Vec<String>,
    /// Server certificate (PEM, chain) for TCP listeners; re-read when it
    /// changes.
    #[arg(long, env = "PODSTART_TLS_CERT_FILE", requires_all = ["tls_private_key_file", "client_ca_file"])]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(
        long,
        env = "PODSTART_TLS_PRIVATE_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that every TCP caller's client certificate
    /// must chain to; a caller without one is refused at the handshake.
    #[arg(long, env = "PODSTART_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Serve `tcp://` listeners in PLAINTEXT, without TLS or caller
    /// identity (for a trusted network only; logged as a warning).
    #[arg(long, env = "PODSTART_INSECURE_TCP")]
    pub insecure_tcp: bool,
    /// Root of the pod log directories.
    #[arg(long, env = "PODSTART_POD_LOG_ROOT", default_value = "/var/log/pods")]
    pub pod_log_root: PathBuf,
    /// Address of the /metrics, /healthz and /readyz HTTP server.
    #[arg(
        long,
        env = "PODSTART_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Deadline of a CRI call (RunPodSandbox gets twice this).
    #[arg(long, env = "PODSTART_RUNTIME_REQUEST_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub runtime_request_timeout: Duration,
    /// Most CRI calls in flight at once (protects the runtime).
    #[arg(long, env = "PODSTART_RUNTIME_MAX_CONCURRENCY", default_value_t = crate::cri::stack::DEFAULT_MAX_CONCURRENCY)]
    pub runtime_max_concurrency: usize,
    /// Not ready while this many attempts in a row of one CRI operation
    /// time out (within a minute); 0 turns the check off.
    #[arg(long, env = "PODSTART_UNREADY_AFTER_TIMEOUTS", default_value_t = 3)]
    pub unready_after_timeouts: u32,
    /// Not ready while a CRI call has waited this long for one of the
    /// `--runtime-max-concurrency` slots; 0 turns the check off.
    #[arg(long, env = "PODSTART_UNREADY_AFTER_SLOT_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub unready_after_slot_wait: Duration,
    /// Deadline of exec and HTTP lifecycle hooks; 0 for none (the kubelet's
    /// exec hooks have none).
    #[arg(long, env = "PODSTART_HOOK_TIMEOUT", default_value = "0s", value_parser = humantime::parse_duration)]
    pub hook_timeout: Duration,
    /// Where container state changes come from: `auto` (CRI
    /// GetContainerEvents, else containerd's events service on the CRI
    /// socket, else relisting), `cri`, `containerd` or `relist` (no events:
    /// the whole node is listed every --relist-period, as the kubelet's
    /// generic PLEG).
    #[arg(
        long,
        env = "PODSTART_CONTAINER_EVENTS",
        value_enum,
        default_value = "auto"
    )]
    pub container_events: crate::pleg::SourceChoice,
    /// How often the node's containers are listed when no event stream is
    /// open (the kubelet's PLEG relists every second).
    #[arg(long, env = "PODSTART_RELIST_PERIOD", default_value = "1s", value_parser = humantime::parse_duration)]
    pub relist_period: Duration,
    /// How often they are listed while events flow, as a safety net.
    #[arg(long, env = "PODSTART_EVENTS_RELIST_PERIOD", default_value = "30s", value_parser = humantime::parse_duration)]
    pub events_relist_period: Duration,
    /// First crash-loop back-off before a failed container is restarted
    /// (the kubelet's 10s; the delay doubles with each failure).
    #[arg(long, env = "PODSTART_RESTART_BACKOFF", default_value = "10s", value_parser = humantime::parse_duration)]
    pub restart_backoff: Duration,
    /// Longest crash-loop back-off (the kubelet's 300s; it resets after
    /// twice this without a failure).
    #[arg(long, env = "PODSTART_RESTART_BACKOFF_MAX", default_value = "300s", value_parser = humantime::parse_duration)]
    pub restart_backoff_max: Duration,
    /// Starts (StartPod, StartContainer) carried out at once; more are
    /// refused with RESOURCE_EXHAUSTED before any runtime call.
    #[arg(long, env = "PODSTART_MAX_CONCURRENT_STARTS", default_value_t = crate::api::DEFAULT_MAX_CONCURRENT_STARTS, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    pub max_concurrent_starts: usize,
    /// How long SIGTERM waits for open streams before cancelling them.
    #[arg(long, env = "PODSTART_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Root of per-pod state: the termination message files mounted into
    /// containers (`<root>/<pod uid>/containers/<name>/`).
    #[arg(
        long,
        env = "PODSTART_POD_STATE_ROOT",
        default_value = "/var/lib/podstart/pods"
    )]
    pub pod_state_root: PathBuf,
    /// Root of pod volumes: emptyDir, config and downward API volumes
    /// (`<root>/<pod uid>/<volume name>`), removed with the pod.
    #[arg(
        long,
        env = "PODSTART_POD_VOLUME_ROOT",
        default_value = "/var/lib/podstart/volumes"
    )]
    pub pod_volume_root: PathBuf,
    /// The node's name, for pods reading `spec.nodeName` (a DaemonSet sets
    /// it from the downward API); default the machine's host name.
    #[arg(long, env = "PODSTART_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node's IPs, for pods reading `status.hostIP(s)`; repeatable (the
    /// environment variable takes a comma-separated list). Default: the
    /// addresses the default routes leave from (none, with a warning, on a
    /// node without a default route).
    #[arg(long, env = "PODSTART_NODE_IPS", value_delimiter = ',')]
    pub node_ip: Vec<std::net::IpAddr>,
    /// CPU and memory kept from pods, as the kubelet's (`cpu=100m,memory=256Mi`):
    /// pods may request together the machine's CPUs online and memory minus
    /// these.
    #[arg(long, env = "PODSTART_SYSTEM_RESERVED", default_value = "", value_parser = crate::node::parse_reserved)]
    pub system_reserved: crate::node::Amounts,
    /// Never ask the runtime for an OOM score adjustment below podstart's
    /// own (and never below 0), as containerd's `restrict_oom_score_adj`:
    /// for nodes where the runtime cannot lower scores (no
    /// CAP_SYS_RESOURCE). Off: the kubelet's values (-997 for Guaranteed
    /// pods).
    #[arg(long, env = "PODSTART_RESTRICT_OOM_SCORE_ADJ")]
    pub restrict_oom_score_adj: bool,
    /// The authorization policy (YAML; see examples/authz-policy.yaml),
    /// re-read when it changes. Without one, root and the group owning the
    /// API socket may do everything, at the baseline Pod Security level.
    #[arg(long, env = "PODSTART_AUTHZ_POLICY")]
    pub authz_policy: Option<PathBuf>,
    /// Image registries pods may use (comma-separated globs on the
    /// registry host, as `registry.example.com,*.corp`), where the policy
    /// rule names none; any registry when empty.
    #[arg(long, env = "PODSTART_ALLOWED_REGISTRIES", value_delimiter = ',')]
    pub allowed_registries: Vec<String>,
    /// Image pulls in flight on the node at most: 0 for no limit, 1 to
    /// serialize pulls (the kubelet's serializeImagePulls).
    #[arg(long, env = "PODSTART_MAX_PARALLEL_IMAGE_PULLS", default_value_t = 0)]
    pub max_parallel_image_pulls: usize,
    /// First back-off after a failed pull of an image for a pod.
    #[arg(long, env = "PODSTART_IMAGE_PULL_BACKOFF", default_value = "10s", value_parser = humantime::parse_duration)]
    pub image_pull_backoff: Duration,
    /// Longest back-off after failed pulls of an image for a pod.
    #[arg(long, env = "PODSTART_IMAGE_PULL_BACKOFF_MAX", default_value = "300s", value_parser = humantime::parse_duration)]
    pub image_pull_backoff_max: Duration,
    /// Cancel a pull whose measured progress (containerd) stands still this
    /// long; 0 for never.
    #[arg(long, env = "PODSTART_IMAGE_PULL_STALL_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub image_pull_stall_timeout: Duration,
    /// How often pull progress is sampled and reported (per image).
    #[arg(long, env = "PODSTART_IMAGE_PULL_PROGRESS_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub image_pull_progress_interval: Duration,
}

#[derive(Debug, Args)]
pub struct SimRuntimeArgs {
    /// Where the simulated CRI runtime listens.
    #[arg(
        long,
        env = "PODSTART_SIM_LISTEN",
        default_value = "unix:///run/podstart/sim-runtime.sock"
    )]
    pub listen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A Kubernetes manifest (YAML or JSON): one Pod, and the ConfigMaps
    /// and Secrets it reads.
    #[arg(required_unless_present = "filenames")]
    pub file: Option<PathBuf>,
    /// A manifest file; give it more than once to take the documents of all
    /// files together (one Pod among them), as `kubectl apply -f a -f b`.
    #[arg(long = "filename", short = 'f', value_name = "FILE")]
    pub filenames: Vec<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Start app containers at once instead of one after another.
    #[arg(long)]
    pub parallel: bool,
    /// Registry credentials in Docker's config.json format (`auths`), used
    /// with those of the manifest's imagePullSecrets.
    #[arg(long, env = "PODSTART_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// Pull each image at its container's turn (the kubelet's way) instead
    /// of all at once when the request is accepted.
    #[arg(long)]
    pub no_pre_pull: bool,
}

#[derive(Debug, Args)]
pub struct PodSelector {
    /// The manifest the pod was started from.
    #[arg(conflicts_with_all = ["uid", "name"])]
    pub file: Option<PathBuf>,
    /// The manifest files the pod was started from (`-f` as given to `run`).
    #[arg(long = "filename", short = 'f', value_name = "FILE", conflicts_with_all = ["uid", "name"])]
    pub filenames: Vec<PathBuf>,
    #[arg(long)]
    pub uid: Option<String>,
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    #[arg(long, requires = "namespace")]
    pub name: Option<String>,
}

impl RunArgs {
    /// The manifest files: the positional one, then every `-f`.
    pub fn files(&self) -> Vec<PathBuf> {
        self.file.iter().chain(&self.filenames).cloned().collect()
    }
}

impl PodSelector {
    /// The manifest files: the positional one, then every `-f`.
    pub fn files(&self) -> Vec<PathBuf> {
        self.file.iter().chain(&self.filenames).cloned().collect()
    }
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub pod: PodSelector,
    /// Seconds each container gets to stop (default: the pod's own).
    #[arg(long)]
    pub grace_period: Option<i64>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub pod: PodSelector,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this namespace.
    #[arg(long, short)]
    pub namespace: Option<String>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this pod.
    #[arg(long)]
    pub uid: Option<String>,
    /// Only this namespace.
    #[arg(long, short)]
    pub namespace: Option<String>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_match_crictl_and_the_kubelet() {
        let cli = Cli::try_parse_from(["podstart", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(
            args.runtime_endpoint,
            "unix:///run/containerd/containerd.sock"
        );
        assert_eq!(args.image_endpoint, None);
        assert_eq!(args.listen, vec!["unix:///run/podstart/podstart.sock"]);
        assert_eq!(args.pod_log_root, PathBuf::from("/var/log/pods"));
        assert_eq!(args.runtime_request_timeout, Duration::from_secs(120));
        assert_eq!(args.authz_policy, None);
        assert!(args.allowed_registries.is_empty());
    }

    #[test]
    fn allowed_registries_split_on_commas() {
        let cli = Cli::try_parse_from([
            "podstart",
            "serve",
            "--authz-policy",
            "/etc/podstart/policy.yaml",
            "--allowed-registries",
            "registry.example.com,*.corp",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(
            args.authz_policy,
            Some(PathBuf::from("/etc/podstart/policy.yaml"))
        );
        assert_eq!(args.allowed_registries, ["registry.example.com", "*.corp"]);
    }
}
