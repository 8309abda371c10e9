//! Kubernetes Pod manifests: reads a `v1/Pod` (YAML or JSON, possibly
//! multi-document) into podstart's own [`StartPodRequest`].
//!
//! The conversion is strict about meaning and lax about validity:
//! - every field podstart can represent is converted;
//! - fields that only concern scheduling or the API server are ignored with a
//!   warning naming the field;
//! - every other field, anywhere, is an error naming its full path
//!   (`spec.containers[1].envFrom: not supported`), so nothing that changes
//!   behaviour is dropped silently;
//! - names, DNS rules, duplicates and path rules are not checked here: the
//!   service validates every request in one place.
//!
//! Like the API server, the conversion applies Kubernetes defaults where the
//! request would otherwise mean something else: a resource request defaults
//! to its limit, and unset startup-probe timings take Kubernetes' values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use crate::cli::quantity::{self, QuantityError};
use crate::proto::v1::{
    Capabilities, Container, ContainerPort, ContainerRestartPolicy, DnsConfig, EnvVar, ExecAction,
    Handler, HttpGetAction, HttpHeader, Lifecycle, Mount, MountPropagation, PodMetadata,
    PodSecurityContext, PodSpec, Probe, Protocol, PullPolicy, Resources, RestartPolicy,
    SeccompProfile, SecurityContext, SleepAction, StartPodRequest, TcpSocketAction,
    TerminationMessagePolicy, handler::Action, seccomp_profile,
};

/// A converted manifest: the request to send, and what was ignored on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The pod as podstart's API spells it; credentials and options are left
    /// for the caller to fill in.
    pub request: StartPodRequest,
    /// One line per ignored field: `"{path}: {why}"`.
    pub warnings: Vec<String>,
}

/// Why a manifest cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not well-formed YAML or JSON; the message carries the line
    /// and column.
    #[error("malformed manifest: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// No document of kind Pod.
    #[error("no Pod in the manifest: exactly one document of kind Pod is required")]
    NoPod,
    /// More than one document of kind Pod.
    #[error("more than one Pod in the manifest: exactly one document of kind Pod is required")]
    MultiplePods,
    /// A document of a kind other than Pod or Secret.
    #[error("unexpected kind {kind:?}: a manifest holds one Pod and, optionally, Secrets")]
    UnexpectedKind { kind: String },
    /// A field podstart cannot represent, or a value of the wrong shape.
    #[error("{path}: {rule}")]
    Field { path: String, rule: String },
    /// A Secret named by imagePullSecrets holds no usable credentials.
    #[error(transparent)]
    PullSecret(#[from] crate::cli::pull_secrets::PullSecretError),
}

type Result<T, E = ManifestError> = std::result::Result<T, E>;

/// Reads and converts the manifest at `path`.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_manifest(&text)
}

/// Converts a manifest: YAML or JSON, one or more documents, exactly one of
/// kind Pod. Secret documents named by the pod's imagePullSecrets become the
/// request's credentials; any other kind is an error.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    let mut pod = None;
    let mut secrets = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut value = Value::deserialize(document)?;
        value.apply_merge()?;
        match document_kind(&value, index + 1)?.as_deref() {
            None => {}
            Some("Secret") => secrets.push(value),
            Some("Pod") if pod.is_some() => return Err(ManifestError::MultiplePods),
            Some("Pod") => pod = Some(value),
            Some(kind) => {
                return Err(ManifestError::UnexpectedKind {
                    kind: kind.to_owned(),
                });
            }
        }
    }
    let pod = pod.ok_or(ManifestError::NoPod)?;
    let mut converter = Converter::default();
    let mut manifest = converter.pod(pod)?;
    for (path, name) in std::mem::take(&mut converter.pull_secrets) {
        match secrets
            .iter()
            .find(|s| crate::cli::pull_secrets::secret_name(s).as_deref() == Some(name.as_str()))
        {
            Some(secret) => manifest
                .request
                .credentials
                .extend(crate::cli::pull_secrets::from_secret(secret)?),
            None => manifest.warnings.push(format!(
                "{path}: Secret {name:?} is not in the manifest; ignored"
            )),
        }
    }
    Ok(manifest)
}

/// The `kind` of one document; `None` for an empty document.
fn document_kind(document: &Value, number: usize) -> Result<Option<String>> {
    let mapping = match document {
        Value::Null => return Ok(None),
        Value::Mapping(mapping) => mapping,
        other => {
            return Err(field_error(
                format!("document {number}"),
                format!(
                    "expected a Kubernetes object (a mapping), found {}",
                    describe(other)
                ),
            ));
        }
    };
    match mapping.get("kind") {
        Some(Value::String(kind)) => Ok(Some(kind.clone())),
        None | Some(Value::Null) => {
            Err(field_error("kind", format!("missing in document {number}")))
        }
        Some(other) => Err(field_error(
            "kind",
            format!(
                "expected a string, found {} (document {number})",
                describe(other)
            ),
        )),
    }
}

// ------------------------------------------------------------ ignored fields

const SCHEDULING: &str = "scheduling field; ignored by podstart";
const API_SERVER: &str = "API server field; ignored by podstart";
const NO_SERVICE_ACCOUNT: &str = "podstart mounts no service account token; ignored";
const NO_PROBES: &str = "podstart does not run liveness/readiness probes";

const POD_IGNORED: &[(&str, &str)] = &[("status", "written by the API server; ignored")];

const METADATA_IGNORED: &[(&str, &str)] = &[
    (
        "generateName",
        "podstart generates no names; ignored (set metadata.name)",
    ),
    ("ownerReferences", API_SERVER),
    ("resourceVersion", API_SERVER),
    ("creationTimestamp", API_SERVER),
    ("managedFields", API_SERVER),
    ("finalizers", API_SERVER),
    ("generation", API_SERVER),
    ("selfLink", API_SERVER),
    ("deletionTimestamp", API_SERVER),
    ("deletionGracePeriodSeconds", API_SERVER),
];

const SPEC_IGNORED: &[(&str, &str)] = &[
    ("nodeName", SCHEDULING),
    ("nodeSelector", SCHEDULING),
    ("affinity", SCHEDULING),
    ("tolerations", SCHEDULING),
    ("schedulerName", SCHEDULING),
    ("schedulingGates", SCHEDULING),
    ("priority", SCHEDULING),
    ("priorityClassName", SCHEDULING),
    ("preemptionPolicy", SCHEDULING),
    ("topologySpreadConstraints", SCHEDULING),
    (
        "readinessGates",
        "podstart reports no pod readiness; ignored",
    ),
    ("serviceAccountName", NO_SERVICE_ACCOUNT),
    ("serviceAccount", NO_SERVICE_ACCOUNT),
    ("automountServiceAccountToken", NO_SERVICE_ACCOUNT),
    (
        "enableServiceLinks",
        "podstart injects no service environment variables; ignored",
    ),
];

const CONTAINER_IGNORED: &[(&str, &str)] = &[
    ("livenessProbe", NO_PROBES),
    ("readinessProbe", NO_PROBES),
    (
        "resizePolicy",
        "podstart does not resize containers in place; ignored",
    ),
];

// ------------------------------------------------------------ enum spellings

const RESTART_POLICIES: &[(&str, RestartPolicy)] = &[
    ("Always", RestartPolicy::Always),
    ("OnFailure", RestartPolicy::OnFailure),
    ("Never", RestartPolicy::Never),
];

const CONTAINER_RESTART_POLICIES: &[(&str, ContainerRestartPolicy)] =
    &[("Always", ContainerRestartPolicy::Always)];

const PULL_POLICIES: &[(&str, PullPolicy)] = &[
    ("Always", PullPolicy::Always),
    ("IfNotPresent", PullPolicy::IfNotPresent),
    ("Never", PullPolicy::Never),
];

const TERMINATION_MESSAGE_POLICIES: &[(&str, TerminationMessagePolicy)] = &[
    ("File", TerminationMessagePolicy::File),
    (
        "FallbackToLogsOnError",
        TerminationMessagePolicy::FallbackToLogsOnError,
    ),
];

const PROPAGATIONS: &[(&str, MountPropagation)] = &[
    ("None", MountPropagation::Private),
    ("HostToContainer", MountPropagation::HostToContainer),
    ("Bidirectional", MountPropagation::Bidirectional),
];

const PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

const SECCOMP_TYPES: &[(&str, seccomp_profile::Type)] = &[
    ("RuntimeDefault", seccomp_profile::Type::RuntimeDefault),
    ("Unconfined", seccomp_profile::Type::Unconfined),
    ("Localhost", seccomp_profile::Type::Localhost),
];

// Kubernetes' defaults for unset probe timings.
const PROBE_PERIOD_SECONDS: i32 = 10;
const PROBE_TIMEOUT_SECONDS: i32 = 1;
const PROBE_SUCCESS_THRESHOLD: i32 = 1;
const PROBE_FAILURE_THRESHOLD: i32 = 3;

// ------------------------------------------------------------ conversion

/// Which list a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerList {
    Init,
    App,
    Ephemeral,
}

/// A pod volume, as far as mounts need it.
#[derive(Debug)]
struct Volume {
    path: String,
    source: VolumeSource,
}

#[derive(Debug)]
enum VolumeSource {
    HostPath(String),
    /// Any other type, by its field name (`emptyDir`, `configMap`, ...).
    Other(String),
}

/// State of one conversion: the warnings so far and the pod's volumes.
#[derive(Debug, Default)]
struct Converter {
    warnings: Vec<String>,
    volumes: BTreeMap<String, Volume>,
    mounted: BTreeSet<String>,
    /// imagePullSecrets: (path, Secret name).
    pull_secrets: Vec<(String, String)>,
}

impl Converter {
    fn warn(&mut self, path: String, why: impl std::fmt::Display) {
        self.warnings.push(format!("{path}: {why}"));
    }

    fn pod(&mut self, document: Value) -> Result<Manifest> {
        let mut pod = Fields::new(document, String::new())?;
        pod.take("kind");
        match pod.string("apiVersion")? {
            Some(version) if version == "v1" => {}
            other => {
                return Err(field_error(
                    "apiVersion",
                    format!(
                        "expected \"v1\" for kind Pod, found {}",
                        other.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
                    ),
                ));
            }
        }
        pod.ignore(POD_IGNORED, &mut self.warnings);
        let metadata = pod
            .fields("metadata")?
            .unwrap_or_else(|| Fields::empty("metadata"));
        let metadata = self.metadata(metadata)?;
        let spec = pod.fields("spec")?.unwrap_or_else(|| Fields::empty("spec"));
        let spec = self.spec(spec, metadata)?;
        pod.finish()?;
        Ok(Manifest {
            request: StartPodRequest {
                pod: Some(spec),
                ..Default::default()
            },
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn metadata(&mut self, mut m: Fields) -> Result<PodMetadata> {
        m.ignore(METADATA_IGNORED, &mut self.warnings);
        let metadata = PodMetadata {
            name: m.string("name")?.unwrap_or_default(),
            namespace: m
                .string("namespace")?
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            uid: m
                .string("uid")?
                .filter(|uid| !uid.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            attempt: 0,
            labels: m.string_map("labels")?,
            annotations: m.string_map("annotations")?,
        };
        m.finish()?;
        Ok(metadata)
    }

    fn spec(&mut self, mut s: Fields, metadata: PodMetadata) -> Result<PodSpec> {
        s.ignore(SPEC_IGNORED, &mut self.warnings);
        let secrets_path = s.path_of("imagePullSecrets");
        for (i, mut reference) in s
            .list_of_fields("imagePullSecrets")?
            .into_iter()
            .enumerate()
        {
            if let Some(name) = reference.string("name")? {
                self.pull_secrets
                    .push((format!("{secrets_path}[{i}]"), name));
            }
            reference.finish()?;
        }
        for volume in s.list_of_fields("volumes")? {
            self.volume(volume)?;
        }
        if let Some(policy) = s.string("dnsPolicy")?
            && policy != "None"
        {
            // The orchestrator resolves DNS; the common ClusterFirst of
            // generated manifests should not stop a start.
            self.warn(
                s.path_of("dnsPolicy"),
                format!(
                    "{policy:?} is not resolved by podstart: the sandbox gets spec.dnsConfig only \
                     (none: the runtime's default resolv.conf)"
                ),
            );
        }
        let runtime_handler = s.string("runtimeClassName")?.unwrap_or_default();
        if !runtime_handler.is_empty() {
            self.warn(
                s.path_of("runtimeClassName"),
                "used as the CRI runtime handler as-is (no RuntimeClass lookup)",
            );
        }
        let (security_context, sysctls) = match s.fields("securityContext")? {
            Some(context) => self.pod_security_context(context)?,
            None => (None, HashMap::new()),
        };
        let spec = PodSpec {
            metadata: Some(metadata),
            hostname: s.string("hostname")?.unwrap_or_default(),
            subdomain: s.string("subdomain")?.unwrap_or_default(),
            dns_config: s.fields("dnsConfig")?.map(dns_config).transpose()?,
            host_network: s.bool("hostNetwork")?.unwrap_or(false),
            host_pid: s.bool("hostPID")?.unwrap_or(false),
            host_ipc: s.bool("hostIPC")?.unwrap_or(false),
            runtime_handler,
            cgroup_parent: String::new(),
            sysctls,
            security_context,
            restart_policy: s.enumeration("restartPolicy", RESTART_POLICIES)?,
            termination_grace_period_seconds: s.int("terminationGracePeriodSeconds")?,
            init_containers: self.containers(&mut s, "initContainers", ContainerList::Init)?,
            containers: self.containers(&mut s, "containers", ContainerList::App)?,
            ephemeral_containers: self.containers(
                &mut s,
                "ephemeralContainers",
                ContainerList::Ephemeral,
            )?,
        };
        s.finish()?;
        self.warn_unmounted_volumes();
        Ok(spec)
    }

    /// The pod security context, and `sysctls`, which PodSpec holds itself.
    fn pod_security_context(
        &mut self,
        mut c: Fields,
    ) -> Result<(Option<PodSecurityContext>, HashMap<String, String>)> {
        let mut sysctls = HashMap::new();
        for mut sysctl in c.list_of_fields("sysctls")? {
            let name = sysctl.string("name")?.unwrap_or_default();
            let value = sysctl.string("value")?.unwrap_or_default();
            if sysctls.insert(name.clone(), value).is_some() {
                return Err(field_error(
                    sysctl.path_of("name"),
                    format!("sysctl {name:?} is set twice"),
                ));
            }
            sysctl.finish()?;
        }
        let context = PodSecurityContext {
            run_as_user: c.int("runAsUser")?,
            run_as_group: c.int("runAsGroup")?,
            run_as_non_root: c.bool("runAsNonRoot")?,
            supplemental_groups: c.ints("supplementalGroups")?,
            fs_group: c.int("fsGroup")?,
            seccomp_profile: self.seccomp_profile(&mut c)?,
        };
        c.finish()?;
        Ok((Some(context), sysctls))
    }

    fn seccomp_profile(&mut self, parent: &mut Fields) -> Result<Option<SeccompProfile>> {
        let Some(mut p) = parent.fields("seccompProfile")? else {
            return Ok(None);
        };
        let profile = SeccompProfile {
            r#type: p.enumeration("type", SECCOMP_TYPES)?,
            localhost_profile: p.string("localhostProfile")?.unwrap_or_default(),
        };
        if !profile.localhost_profile.is_empty() {
            self.warn(
                p.path_of("localhostProfile"),
                "passed to the runtime as-is (Kubernetes would resolve it under the kubelet's seccomp directory)",
            );
        }
        p.finish()?;
        Ok(Some(profile))
    }

    fn volume(&mut self, mut v: Fields) -> Result<()> {
        let name = v
            .string("name")?
            .ok_or_else(|| field_error(v.path_of("name"), "required"))?;
        if self.volumes.contains_key(&name) {
            return Err(field_error(
                v.path_of("name"),
                format!("volume {name:?} is declared twice"),
            ));
        }
        let path = v.path.clone();
        let source = if let Some(mut host) = v.fields("hostPath")? {
            let host_path = host.string("path")?.unwrap_or_default();
            if let Some(kind) = host.string("type")?.filter(|kind| !kind.is_empty()) {
                self.warn(
                    host.path_of("type"),
                    format!("{kind:?} is not checked: podstart mounts the host path as given"),
                );
            }
            host.finish()?;
            v.finish()?;
            VolumeSource::HostPath(host_path)
        } else {
            // Rejected only if a container mounts it; an unset source is an
            // emptyDir, as the API server would default it.
            VolumeSource::Other(v.first_key().unwrap_or("emptyDir").to_owned())
        };
        self.volumes.insert(name, Volume { path, source });
        Ok(())
    }

    fn warn_unmounted_volumes(&mut self) {
        let unmounted: Vec<(String, String)> = self
            .volumes
            .iter()
            .filter(|(name, _)| !self.mounted.contains(*name))
            .filter_map(|(name, volume)| match &volume.source {
                VolumeSource::Other(kind) => Some((
                    volume.path.clone(),
                    format!("{kind} volume {name:?} is not mounted by any container; ignored"),
                )),
                VolumeSource::HostPath(_) => None,
            })
            .collect();
        for (path, why) in unmounted {
            self.warn(path, why);
        }
    }

    fn containers(
        &mut self,
        spec: &mut Fields,
        key: &str,
        list: ContainerList,
    ) -> Result<Vec<Container>> {
        spec.list_of_fields(key)?
            .into_iter()
            .map(|container| self.container(container, list))
            .collect()
    }

    fn container(&mut self, mut c: Fields, list: ContainerList) -> Result<Container> {
        c.ignore(CONTAINER_IGNORED, &mut self.warnings);
        let target_container_name = match list {
            ContainerList::Ephemeral => c.string("targetContainerName")?.unwrap_or_default(),
            ContainerList::Init | ContainerList::App => String::new(),
        };
        let container = Container {
            name: c.string("name")?.unwrap_or_default(),
            image: c.string("image")?.unwrap_or_default(),
            image_pull_policy: c.enumeration("imagePullPolicy", PULL_POLICIES)?,
            command: c.strings("command")?,
            args: c.strings("args")?,
            working_dir: c.string("workingDir")?.unwrap_or_default(),
            env: c
                .list_of_fields("env")?
                .into_iter()
                .map(env_var)
                .collect::<Result<_>>()?,
            mounts: c
                .list_of_fields("volumeMounts")?
                .into_iter()
                .map(|mount| self.mount(mount))
                .collect::<Result<_>>()?,
            devices: Vec::new(),
            ports: c
                .list_of_fields("ports")?
                .into_iter()
                .map(container_port)
                .collect::<Result<_>>()?,
            resources: c.fields("resources")?.map(resources).transpose()?.flatten(),
            security_context: match c.fields("securityContext")? {
                Some(context) => Some(self.security_context(context)?),
                None => None,
            },
            lifecycle: c.fields("lifecycle")?.map(lifecycle).transpose()?,
            startup_probe: c.fields("startupProbe")?.map(probe).transpose()?,
            restart_policy: c.enumeration("restartPolicy", CONTAINER_RESTART_POLICIES)?,
            tty: c.bool("tty")?.unwrap_or(false),
            stdin: c.bool("stdin")?.unwrap_or(false),
            stdin_once: c.bool("stdinOnce")?.unwrap_or(false),
            termination_message_path: c.string("terminationMessagePath")?.unwrap_or_default(),
            termination_message_policy: c
                .enumeration("terminationMessagePolicy", TERMINATION_MESSAGE_POLICIES)?,
            target_container_name,
        };
        c.finish()?;
        Ok(container)
    }

    fn mount(&mut self, mut m: Fields) -> Result<Mount> {
        if m.take("subPathExpr").is_some() {
            return Err(field_error(
                m.path_of("subPathExpr"),
                "not supported: expand the variables into subPath",
            ));
        }
        let name = m.string("name")?.unwrap_or_default();
        let volume = self.volumes.get(&name).ok_or_else(|| {
            field_error(
                m.path_of("name"),
                format!("no volume {name:?} in spec.volumes"),
            )
        })?;
        let volume_path = match &volume.source {
            VolumeSource::HostPath(path) => path.clone(),
            VolumeSource::Other(kind) => {
                return Err(field_error(
                    m.path_of("name"),
                    format!(
                        "volume {name}: only hostPath volumes are supported \
                         (podstart takes resolved host paths), not {kind}"
                    ),
                ));
            }
        };
        let sub_path = m.string("subPath")?.unwrap_or_default();
        let host_path = if sub_path.is_empty() {
            volume_path
        } else {
            format!("{}/{sub_path}", volume_path.trim_end_matches('/'))
        };
        let mount = Mount {
            container_path: m.string("mountPath")?.unwrap_or_default(),
            host_path,
            read_only: m.bool("readOnly")?.unwrap_or(false),
            propagation: m.enumeration("mountPropagation", PROPAGATIONS)?,
            selinux_relabel: false,
        };
        m.finish()?;
        self.mounted.insert(name);
        Ok(mount)
    }

    fn security_context(&mut self, mut c: Fields) -> Result<SecurityContext> {
        let capabilities = match c.fields("capabilities")? {
            Some(mut caps) => {
                let capabilities = Capabilities {
                    add: caps.strings("add")?,
                    drop: caps.strings("drop")?,
                };
                caps.finish()?;
                Some(capabilities)
            }
            None => None,
        };
        let context = SecurityContext {
            privileged: c.bool("privileged")?,
            run_as_user: c.int("runAsUser")?,
            run_as_group: c.int("runAsGroup")?,
            run_as_non_root: c.bool("runAsNonRoot")?,
            read_only_root_filesystem: c.bool("readOnlyRootFilesystem")?,
            allow_privilege_escalation: c.bool("allowPrivilegeEscalation")?,
            capabilities,
            seccomp_profile: self.seccomp_profile(&mut c)?,
        };
        c.finish()?;
        Ok(context)
    }
}

fn dns_config(mut d: Fields) -> Result<DnsConfig> {
    let mut options = Vec::new();
    for mut option in d.list_of_fields("options")? {
        let name = option.string("name")?.unwrap_or_default();
        let value = option.string("value")?;
        option.finish()?;
        options.push(match value {
            Some(value) => format!("{name}:{value}"),
            None => name,
        });
    }
    let config = DnsConfig {
        servers: d.strings("nameservers")?,
        searches: d.strings("searches")?,
        options,
    };
    d.finish()?;
    Ok(config)
}

fn env_var(mut e: Fields) -> Result<EnvVar> {
    if e.take("valueFrom").is_some() {
        return Err(field_error(
            e.path_of("valueFrom"),
            "only literal values are supported; resolve valueFrom before calling podstart",
        ));
    }
    let var = EnvVar {
        name: e.string("name")?.unwrap_or_default(),
        value: e.string("value")?.unwrap_or_default(),
    };
    e.finish()?;
    Ok(var)
}

fn container_port(mut p: Fields) -> Result<ContainerPort> {
    let port = ContainerPort {
        name: p.string("name")?.unwrap_or_default(),
        container_port: p.int("containerPort")?.unwrap_or(0),
        host_port: p.int("hostPort")?.unwrap_or(0),
        host_ip: p.string("hostIP")?.unwrap_or_default(),
        protocol: p.enumeration("protocol", PROTOCOLS)?,
    };
    p.finish()?;
    Ok(port)
}

/// CPU and memory of one resource list (`requests` or `limits`).
#[derive(Debug, Default)]
struct ResourceList {
    cpu_millis: Option<i64>,
    memory_bytes: Option<i64>,
}

/// `None` when neither CPU nor memory is set. A request left unset defaults
/// to its limit, as the API server does.
fn resources(mut r: Fields) -> Result<Option<Resources>> {
    let requests = r.fields("requests")?.map(resource_list).transpose()?;
    let limits = r.fields("limits")?.map(resource_list).transpose()?;
    r.finish()?;
    let requests = requests.unwrap_or_default();
    let limits = limits.unwrap_or_default();
    if requests.cpu_millis.is_none()
        && requests.memory_bytes.is_none()
        && limits.cpu_millis.is_none()
        && limits.memory_bytes.is_none()
    {
        return Ok(None);
    }
    Ok(Some(Resources {
        cpu_request_millis: requests.cpu_millis.or(limits.cpu_millis).unwrap_or(0),
        cpu_limit_millis: limits.cpu_millis.unwrap_or(0),
        memory_request_bytes: requests.memory_bytes.or(limits.memory_bytes).unwrap_or(0),
        memory_limit_bytes: limits.memory_bytes.unwrap_or(0),
    }))
}

fn resource_list(mut list: Fields) -> Result<ResourceList> {
    let resources = ResourceList {
        cpu_millis: list.quantity("cpu", quantity::parse_millis)?,
        memory_bytes: list.quantity("memory", quantity::parse_units)?,
    };
    if let Some(name) = list.first_key() {
        return Err(field_error(
            list.path_of(name),
            "not supported: podstart sets only cpu and memory",
        ));
    }
    Ok(resources)
}

fn lifecycle(mut l: Fields) -> Result<Lifecycle> {
    let lifecycle = Lifecycle {
        post_start: l.fields("postStart")?.map(hook).transpose()?,
        pre_stop: l.fields("preStop")?.map(hook).transpose()?,
    };
    l.finish()?;
    Ok(lifecycle)
}

fn hook(mut h: Fields) -> Result<Handler> {
    if h.take("tcpSocket").is_some() {
        return Err(field_error(
            h.path_of("tcpSocket"),
            "not valid as a lifecycle hook",
        ));
    }
    let action = take_action(&mut h, &["exec", "httpGet", "sleep"])?;
    h.finish()?;
    Ok(Handler { action })
}

fn probe(mut p: Fields) -> Result<Probe> {
    let action = take_action(&mut p, &["exec", "httpGet", "tcpSocket"])?;
    let probe = Probe {
        handler: Some(Handler { action }),
        initial_delay_seconds: p.int("initialDelaySeconds")?.unwrap_or(0),
        period_seconds: p.int("periodSeconds")?.unwrap_or(PROBE_PERIOD_SECONDS),
        timeout_seconds: p.int("timeoutSeconds")?.unwrap_or(PROBE_TIMEOUT_SECONDS),
        success_threshold: p
            .int("successThreshold")?
            .unwrap_or(PROBE_SUCCESS_THRESHOLD),
        failure_threshold: p
            .int("failureThreshold")?
            .unwrap_or(PROBE_FAILURE_THRESHOLD),
    };
    p.finish()?;
    Ok(probe)
}

/// Takes the one handler among `kinds` out of a hook or probe; two handlers
/// cannot be represented.
fn take_action(h: &mut Fields, kinds: &[&str]) -> Result<Option<Action>> {
    let mut found: Vec<(&str, Action)> = Vec::new();
    for &kind in kinds {
        let Some(mut a) = h.fields(kind)? else {
            continue;
        };
        let action = match kind {
            "exec" => Action::Exec(ExecAction {
                command: a.strings("command")?,
            }),
            "httpGet" => {
                let headers = a
                    .list_of_fields("httpHeaders")?
                    .into_iter()
                    .map(http_header)
                    .collect::<Result<_>>()?;
                Action::HttpGet(HttpGetAction {
                    scheme: a.string("scheme")?.unwrap_or_default(),
                    host: a.string("host")?.unwrap_or_default(),
                    port: a.port("port")?,
                    path: a.string("path")?.unwrap_or_default(),
                    headers,
                })
            }
            "sleep" => Action::Sleep(SleepAction {
                seconds: a.int("seconds")?.unwrap_or(0),
            }),
            _ => Action::TcpSocket(TcpSocketAction {
                host: a.string("host")?.unwrap_or_default(),
                port: a.port("port")?,
            }),
        };
        a.finish()?;
        found.push((kind, action));
    }
    if found.len() > 1 {
        let kinds: Vec<&str> = found.iter().map(|(kind, _)| *kind).collect();
        return Err(field_error(
            h.path.clone(),
            format!("only one handler may be set, found {}", kinds.join(" and ")),
        ));
    }
    Ok(found.pop().map(|(_, action)| action))
}

fn http_header(mut h: Fields) -> Result<HttpHeader> {
    let header = HttpHeader {
        name: h.string("name")?.unwrap_or_default(),
        value: h.string("value")?.unwrap_or_default(),
    };
    h.finish()?;
    Ok(header)
}

// ------------------------------------------------------------ field walking

/// One YAML mapping under conversion. Known fields are taken out one by one;
/// [`Fields::finish`] rejects whatever is left. A field set to null counts as
/// absent, as it does in Kubernetes.
#[derive(Debug)]
struct Fields {
    /// Path of this mapping from the document root; empty for the root.
    path: String,
    entries: Vec<(String, Value)>,
}

impl Fields {
    fn new(value: Value, path: String) -> Result<Self> {
        let mapping = match value {
            Value::Mapping(mapping) => mapping,
            other => {
                let found = describe(&other);
                return Err(field_error(
                    path,
                    format!("expected a mapping, found {found}"),
                ));
            }
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let Value::String(key) = key else {
                let found = describe(&key);
                return Err(field_error(
                    path,
                    format!("keys must be strings, found {found}"),
                ));
            };
            if !value.is_null() {
                entries.push((key, value));
            }
        }
        Ok(Self { path, entries })
    }

    fn empty(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            entries: Vec::new(),
        }
    }

    fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    fn first_key(&self) -> Option<&str> {
        self.entries.first().map(|(key, _)| key.as_str())
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Takes `key` and converts it with `convert`, which gets the field path.
    fn get<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(Value, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        let path = self.path_of(key);
        self.take(key)
            .map(|value| convert(value, &path))
            .transpose()
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.get(key, to_string)
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.get(key, to_bool)
    }

    fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<T>> {
        self.get(key, to_int)
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>> {
        self.list(key, to_string)
    }

    fn ints(&mut self, key: &str) -> Result<Vec<i64>> {
        self.list(key, to_int)
    }

    fn list<T>(&mut self, key: &str, convert: fn(Value, &str) -> Result<T>) -> Result<Vec<T>> {
        let items = self.get(key, to_items)?.unwrap_or_default();
        items
            .into_iter()
            .map(|(path, item)| convert(item, &path))
            .collect()
    }

    fn list_of_fields(&mut self, key: &str) -> Result<Vec<Fields>> {
        self.list(key, |item, path| Fields::new(item, path.to_owned()))
    }

    fn fields(&mut self, key: &str) -> Result<Option<Fields>> {
        self.get(key, |value, path| Fields::new(value, path.to_owned()))
    }

    /// A `map[string]string`, such as labels; a key set to null is left out.
    fn string_map(&mut self, key: &str) -> Result<HashMap<String, String>> {
        let Some(map) = self.fields(key)? else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::with_capacity(map.entries.len());
        for (name, value) in map.entries {
            let path = child_path(&map.path, &name);
            out.insert(name, to_string(value, &path)?);
        }
        Ok(out)
    }

    /// An enum spelled as Kubernetes spells it; absent or "" is unspecified (0).
    fn enumeration<E: Copy + Into<i32>>(
        &mut self,
        key: &str,
        choices: &[(&str, E)],
    ) -> Result<i32> {
        let Some(text) = self.string(key)? else {
            return Ok(0);
        };
        if text.is_empty() {
            return Ok(0);
        }
        match choices.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Ok((*value).into()),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                Err(field_error(
                    self.path_of(key),
                    format!("expected one of {}, found {text:?}", names.join(", ")),
                ))
            }
        }
    }

    /// An int-or-string port: a number or the name of a container port.
    fn port(&mut self, key: &str) -> Result<String> {
        let port = self.get(key, |value, path| match value {
            Value::String(name) => Ok(name),
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
            other => Err(field_error(
                path,
                format!("expected a port number or name, found {}", describe(&other)),
            )),
        })?;
        Ok(port.unwrap_or_default())
    }

    /// A resource quantity, given as a string or a bare number.
    fn quantity(
        &mut self,
        key: &str,
        parse: fn(&str) -> Result<i64, QuantityError>,
    ) -> Result<Option<i64>> {
        self.get(key, |value, path| {
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                other => {
                    return Err(field_error(
                        path,
                        format!("expected a quantity, found {}", describe(&other)),
                    ));
                }
            };
            parse(&text).map_err(|error| field_error(path, error.to_string()))
        })
    }

    /// Takes the fields of `table` that are present and warns about each one
    /// that holds something.
    fn ignore(&mut self, table: &[(&str, &str)], warnings: &mut Vec<String>) {
        for (key, why) in table {
            if let Some(value) = self.take(key)
                && !is_empty(&value)
            {
                warnings.push(format!("{}: {why}", self.path_of(key)));
            }
        }
    }

    /// Rejects the first field nothing took.
    fn finish(self) -> Result<()> {
        match self.entries.first() {
            Some((key, _)) => Err(field_error(self.path_of(key), "not supported")),
            None => Ok(()),
        }
    }
}

fn field_error(path: impl Into<String>, rule: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        path: path.into(),
        rule: rule.into(),
    }
}

/// `parent.key`, or `parent[key]` for keys that are not plain words
/// (`metadata.labels[app.kubernetes.io/name]`).
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key}]"),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(mapping) => mapping.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::Tagged(_) => false,
    }
}

fn to_string(value: Value, path: &str) -> Result<String> {
    match value {
        Value::String(text) => Ok(text),
        other @ (Value::Number(_) | Value::Bool(_)) => Err(field_error(
            path,
            format!("expected a string, found {} (quote it)", describe(&other)),
        )),
        other => Err(field_error(
            path,
            format!("expected a string, found {}", describe(&other)),
        )),
    }
}

fn to_bool(value: Value, path: &str) -> Result<bool> {
    match value {
        Value::Bool(flag) => Ok(flag),
        other => Err(field_error(
            path,
            format!("expected true or false, found {}", describe(&other)),
        )),
    }
}

fn to_int<T: TryFrom<i64>>(value: Value, path: &str) -> Result<T> {
    let number = match &value {
        Value::Number(number) => number,
        other => {
            return Err(field_error(
                path,
                format!("expected an integer, found {}", describe(other)),
            ));
        }
    };
    let Some(wide) = number.as_i64() else {
        let rule = if number.is_u64() {
            format!("{number} is out of range")
        } else {
            format!("expected an integer, found {number}")
        };
        return Err(field_error(path, rule));
    };
    T::try_from(wide).map_err(|_| field_error(path, format!("{wide} is out of range")))
}

/// The items of a list, each with its path (`path[i]`).
fn to_items(value: Value, path: &str) -> Result<Vec<(String, Value)>> {
    match value {
        Value::Sequence(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(index, item)| (format!("{path}[{index}]"), item))
            .collect()),
        other => Err(field_error(
            path,
            format!("expected a list, found {}", describe(&other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::handler::Action;

    const FULL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  uid: 2d8f7c1a-5b7e-4c1f-9a0e-6f3b2a1c9d84
  labels:
    app: web
    app.kubernetes.io/part-of: shop
  annotations:
    note: first pod
spec:
  restartPolicy: OnFailure
  hostname: web-0
  subdomain: web
  hostNetwork: false
  hostPID: true
  hostIPC: true
  terminationGracePeriodSeconds: 45
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [shop.svc.cluster.local, svc.cluster.local]
    options:
      - name: ndots
        value: "5"
      - name: edns0
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    supplementalGroups: [4000, 4001]
    fsGroup: 2000
    seccompProfile:
      type: RuntimeDefault
    sysctls:
      - name: net.core.somaxconn
        value: "1024"
  volumes:
    - name: data
      hostPath:
        path: /srv/web/data
    - name: config
      hostPath:
        path: /srv/web/config/
  initContainers:
    - name: migrate
      image: registry.example/web-migrate:1.4
      command: [/bin/migrate]
      args: [--to, latest]
      env:
        - name: DB_PATH
          value: /data/db
      volumeMounts:
        - name: data
          mountPath: /data
    - name: log-shipper
      image: registry.example/shipper:2.0
      restartPolicy: Always
  containers:
    - name: app
      image: registry.example/web:1.4
      imagePullPolicy: IfNotPresent
      workingDir: /app
      env:
        - name: PORT
          value: "8080"
        - name: GREETING
          value: hello $(PORT)
        - name: EMPTY
      ports:
        - name: http
          containerPort: 8080
          hostPort: 80
          hostIP: 127.0.0.1
          protocol: TCP
        - containerPort: 5353
          protocol: UDP
      resources:
        requests: {cpu: 250m, memory: 128Mi}
        limits: {cpu: "1", memory: 1Gi}
      securityContext:
        privileged: false
        runAsUser: 1001
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          add: [NET_BIND_SERVICE]
          drop: [ALL]
        seccompProfile:
          type: Unconfined
      volumeMounts:
        - name: data
          mountPath: /var/lib/web
          readOnly: true
          mountPropagation: HostToContainer
        - name: config
          mountPath: /etc/web/app.conf
          subPath: app.conf
          mountPropagation: None
      lifecycle:
        postStart:
          exec:
            command: [/bin/sh, -c, warm-cache]
        preStop:
          sleep:
            seconds: 5
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      terminationMessagePolicy: FallbackToLogsOnError
    - name: metrics
      image: registry.example/exporter:0.9
      args: [--listen=:9100]
      ports:
        - containerPort: 9100
      resources:
        limits: {cpu: 0.5, memory: 64Mi}
      lifecycle:
        preStop:
          httpGet:
            scheme: HTTP
            path: /quit
            port: 9100
            httpHeaders:
              - name: X-Reason
                value: stop
      startupProbe:
        tcpSocket:
          port: 9100
        initialDelaySeconds: 1
        timeoutSeconds: 3
      tty: true
      stdin: true
      stdinOnce: true
      terminationMessagePath: /tmp/termination
      volumeMounts:
        - name: data
          mountPath: /data
          mountPropagation: Bidirectional
  ephemeralContainers:
    - name: debugger
      image: busybox:1.36
      command: [sh]
      targetContainerName: app
      stdin: true
      tty: true
"#;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    fn string_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn mount(container_path: &str, host_path: &str) -> Mount {
        Mount {
            container_path: container_path.to_owned(),
            host_path: host_path.to_owned(),
            ..Default::default()
        }
    }

    fn pod_spec(manifest: &Manifest) -> &PodSpec {
        manifest.request.pod.as_ref().expect("request has a pod")
    }

    /// A Pod manifest whose spec is `spec`, written as a YAML flow mapping.
    fn pod_yaml(spec: &str) -> String {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n")
    }

    fn field_error_of(text: &str) -> (String, String) {
        match parse_manifest(text) {
            Err(ManifestError::Field { path, rule }) => (path, rule),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn full_pod_converts_field_by_field() {
        let manifest = parse_manifest(FULL_POD).expect("converts");
        assert_eq!(manifest.warnings, Vec::<String>::new());
        assert!(manifest.request.credentials.is_empty());
        assert_eq!(manifest.request.options, None);
        let spec = pod_spec(&manifest);

        assert_eq!(
            spec.metadata,
            Some(PodMetadata {
                name: "web".into(),
                namespace: "shop".into(),
                uid: "2d8f7c1a-5b7e-4c1f-9a0e-6f3b2a1c9d84".into(),
                attempt: 0,
                labels: string_map(&[("app", "web"), ("app.kubernetes.io/part-of", "shop")]),
                annotations: string_map(&[("note", "first pod")]),
            })
        );
        assert_eq!(spec.restart_policy, RestartPolicy::OnFailure as i32);
        assert_eq!(spec.hostname, "web-0");
        assert_eq!(spec.subdomain, "web");
        assert!(!spec.host_network);
        assert!(spec.host_pid);
        assert!(spec.host_ipc);
        assert_eq!(spec.termination_grace_period_seconds, Some(45));
        assert_eq!(spec.runtime_handler, "");
        assert_eq!(spec.cgroup_parent, "");
        assert_eq!(
            spec.dns_config,
            Some(DnsConfig {
                servers: strings(&["10.96.0.10"]),
                searches: strings(&["shop.svc.cluster.local", "svc.cluster.local"]),
                options: strings(&["ndots:5", "edns0"]),
            })
        );
        assert_eq!(
            spec.security_context,
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                run_as_non_root: Some(true),
                supplemental_groups: vec![4000, 4001],
                fs_group: Some(2000),
                seccomp_profile: Some(SeccompProfile {
                    r#type: seccomp_profile::Type::RuntimeDefault as i32,
                    localhost_profile: String::new(),
                }),
            })
        );
        assert_eq!(spec.sysctls, string_map(&[("net.core.somaxconn", "1024")]));

        assert_eq!(spec.init_containers.len(), 2);
        assert_eq!(
            spec.init_containers[0],
            Container {
                name: "migrate".into(),
                image: "registry.example/web-migrate:1.4".into(),
                command: strings(&["/bin/migrate"]),
                args: strings(&["--to", "latest"]),
                env: vec![env("DB_PATH", "/data/db")],
                mounts: vec![mount("/data", "/srv/web/data")],
                ..Default::default()
            }
        );
        assert_eq!(
            spec.init_containers[1],
            Container {
                name: "log-shipper".into(),
                image: "registry.example/shipper:2.0".into(),
                restart_policy: ContainerRestartPolicy::Always as i32,
                ..Default::default()
            }
        );

        assert_eq!(spec.containers.len(), 2);
        assert_eq!(
            spec.containers[0],
            Container {
                name: "app".into(),
                image: "registry.example/web:1.4".into(),
                image_pull_policy: PullPolicy::IfNotPresent as i32,
                working_dir: "/app".into(),
                env: vec![
                    env("PORT", "8080"),
                    env("GREETING", "hello $(PORT)"),
                    env("EMPTY", ""),
                ],
                mounts: vec![
                    Mount {
                        read_only: true,
                        propagation: MountPropagation::HostToContainer as i32,
                        ..mount("/var/lib/web", "/srv/web/data")
                    },
                    Mount {
                        propagation: MountPropagation::Private as i32,
                        ..mount("/etc/web/app.conf", "/srv/web/config/app.conf")
                    },
                ],
                ports: vec![
                    ContainerPort {
                        name: "http".into(),
                        container_port: 8080,
                        host_port: 80,
                        host_ip: "127.0.0.1".into(),
                        protocol: Protocol::Tcp as i32,
                    },
                    ContainerPort {
                        container_port: 5353,
                        protocol: Protocol::Udp as i32,
                        ..Default::default()
                    },
                ],
                resources: Some(Resources {
                    cpu_request_millis: 250,
                    cpu_limit_millis: 1000,
                    memory_request_bytes: 128 << 20,
                    memory_limit_bytes: 1 << 30,
                }),
                security_context: Some(SecurityContext {
                    privileged: Some(false),
                    run_as_user: Some(1001),
                    run_as_group: None,
                    run_as_non_root: None,
                    read_only_root_filesystem: Some(true),
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        add: strings(&["NET_BIND_SERVICE"]),
                        drop: strings(&["ALL"]),
                    }),
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::Unconfined as i32,
                        localhost_profile: String::new(),
                    }),
                }),
                lifecycle: Some(Lifecycle {
                    post_start: Some(Handler {
                        action: Some(Action::Exec(ExecAction {
                            command: strings(&["/bin/sh", "-c", "warm-cache"]),
                        })),
                    }),
                    pre_stop: Some(Handler {
                        action: Some(Action::Sleep(SleepAction { seconds: 5 })),
                    }),
                }),
                startup_probe: Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::HttpGet(HttpGetAction {
                            port: "http".into(),
                            path: "/healthz".into(),
                            ..Default::default()
                        })),
                    }),
                    initial_delay_seconds: 0,
                    period_seconds: 2,
                    timeout_seconds: 1,
                    success_threshold: 1,
                    failure_threshold: 30,
                }),
                termination_message_policy: TerminationMessagePolicy::FallbackToLogsOnError as i32,
                ..Default::default()
            }
        );
        assert_eq!(
            spec.containers[1],
            Container {
                name: "metrics".into(),
                image: "registry.example/exporter:0.9".into(),
                args: strings(&["--listen=:9100"]),
                ports: vec![ContainerPort {
                    container_port: 9100,
                    ..Default::default()
                }],
                // Requests default to the limits; a bare 0.5 is half a core.
                resources: Some(Resources {
                    cpu_request_millis: 500,
                    cpu_limit_millis: 500,
                    memory_request_bytes: 64 << 20,
                    memory_limit_bytes: 64 << 20,
                }),
                lifecycle: Some(Lifecycle {
                    post_start: None,
                    pre_stop: Some(Handler {
                        action: Some(Action::HttpGet(HttpGetAction {
                            scheme: "HTTP".into(),
                            host: String::new(),
                            port: "9100".into(),
                            path: "/quit".into(),
                            headers: vec![HttpHeader {
                                name: "X-Reason".into(),
                                value: "stop".into(),
                            }],
                        })),
                    }),
                }),
                startup_probe: Some(Probe {
                    handler: Some(Handler {
                        action: Some(Action::TcpSocket(TcpSocketAction {
                            host: String::new(),
                            port: "9100".into(),
                        })),
                    }),
                    initial_delay_seconds: 1,
                    period_seconds: 10,
                    timeout_seconds: 3,
                    success_threshold: 1,
                    failure_threshold: 3,
                }),
                tty: true,
                stdin: true,
                stdin_once: true,
                termination_message_path: "/tmp/termination".into(),
                mounts: vec![Mount {
                    propagation: MountPropagation::Bidirectional as i32,
                    ..mount("/data", "/srv/web/data")
                }],
                ..Default::default()
            }
        );

        assert_eq!(
            spec.ephemeral_containers,
            vec![Container {
                name: "debugger".into(),
                image: "busybox:1.36".into(),
                command: strings(&["sh"]),
                target_container_name: "app".into(),
                stdin: true,
                tty: true,
                ..Default::default()
            }]
        );
    }

    #[test]
    fn json_input_converts() {
        let text = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"j\", \"uid\": \"u-1\"},\n\t\"spec\": {\n\t\t\"containers\": [{\"name\": \"c\", \"image\": \"nginx\", \"ports\": [{\"containerPort\": 80}], \"resources\": {\"limits\": {\"memory\": 1e3, \"cpu\": \"100m\"}}}]\n\t}\n}\n";
        let manifest = parse_manifest(text).expect("converts");
        let spec = pod_spec(&manifest);
        let metadata = spec.metadata.as_ref().expect("metadata");
        assert_eq!(
            (
                metadata.name.as_str(),
                metadata.namespace.as_str(),
                metadata.uid.as_str()
            ),
            ("j", "default", "u-1")
        );
        assert_eq!(spec.containers.len(), 1);
        let container = &spec.containers[0];
        assert_eq!(
            (container.name.as_str(), container.image.as_str()),
            ("c", "nginx")
        );
        assert_eq!(container.ports[0].container_port, 80);
        assert_eq!(
            container.resources,
            Some(Resources {
                cpu_request_millis: 100,
                cpu_limit_millis: 100,
                memory_request_bytes: 1000,
                memory_limit_bytes: 1000,
            })
        );
    }

    #[test]
    fn secrets_and_empty_documents_are_skipped() {
        let text = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pull}\ntype: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: e30=}\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: x}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: other}\n";
        let manifest = parse_manifest(text).expect("converts");
        assert_eq!(manifest.warnings, Vec::<String>::new());
        let spec = pod_spec(&manifest);
        assert_eq!(spec.metadata.as_ref().map(|m| m.name.as_str()), Some("p"));
        assert_eq!(spec.containers[0].image, "i");
    }

    #[test]
    fn document_level_errors() {
        let pod = pod_yaml("{containers: [{name: c, image: i}]}");
        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "NoPod"),
            ("---\n---\n".into(), "NoPod"),
            (secret.into(), "NoPod"),
            (format!("{pod}---\n{pod}"), "MultiplePods"),
            (
                format!("{pod}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n"),
                "UnexpectedKind ConfigMap",
            ),
            (
                "apiVersion: apps/v1\nkind: Deployment\n".into(),
                "UnexpectedKind Deployment",
            ),
        ];
        for (text, want) in cases {
            let got = match parse_manifest(&text) {
                Err(ManifestError::NoPod) => "NoPod".to_owned(),
                Err(ManifestError::MultiplePods) => "MultiplePods".to_owned(),
                Err(ManifestError::UnexpectedKind { kind }) => format!("UnexpectedKind {kind}"),
                other => format!("{other:?}"),
            };
            assert_eq!(got, want, "manifest:\n{text}");
        }
    }

    #[test]
    fn malformed_yaml_reports_its_location() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c\n";
        let error = parse_manifest(text).expect_err("malformed");
        let ManifestError::Yaml(inner) = &error else {
            panic!("expected a YAML error, got {error:?}");
        };
        assert!(inner.location().is_some(), "{inner}");
        assert!(error.to_string().contains("line"), "{error}");

        let duplicate = "apiVersion: v1\nkind: Pod\nkind: Pod\n";
        assert!(matches!(
            parse_manifest(duplicate),
            Err(ManifestError::Yaml(_))
        ));
    }

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, image: i}, {name: b, image: i, envFrom: [{configMapRef: {name: c}}]}]}",
                "spec.containers[1].envFrom",
                "not supported",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: x}, {name: Y, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]}]}",
                "spec.containers[0].env[1].valueFrom",
                "only literal values are supported; resolve valueFrom before calling podstart",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: 8080}]}]}",
                "spec.containers[0].env[0].value",
                "expected a string, found a number (quote it)",
            ),
            (
                "{containers: [{name: a, lifecycle: {postStart: {tcpSocket: {port: 80}}}}]}",
                "spec.containers[0].lifecycle.postStart.tcpSocket",
                "not valid as a lifecycle hook",
            ),
            (
                "{containers: [{name: a, lifecycle: {preStop: {exec: {command: [x]}, retries: 3}}}]}",
                "spec.containers[0].lifecycle.preStop.retries",
                "not supported",
            ),
            (
                "{containers: [{name: a, lifecycle: {preStop: {sleep: {seconds: 1}, exec: {command: [x]}}}}]}",
                "spec.containers[0].lifecycle.preStop",
                "only one handler may be set, found exec and sleep",
            ),
            (
                "{containers: [{name: a, lifecycle: {stopSignal: SIGUSR1}}]}",
                "spec.containers[0].lifecycle.stopSignal",
                "not supported",
            ),
            (
                "{volumes: [{name: d, hostPath: {path: /d}}], containers: [{name: a, volumeMounts: [{name: d, mountPath: /d, subPathExpr: $(POD)}]}]}",
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "not supported",
            ),
            (
                "{containers: [{name: a, volumeDevices: [{name: d, devicePath: /dev/xvda}]}]}",
                "spec.containers[0].volumeDevices",
                "not supported",
            ),
            (
                "{volumes: [{name: cache, emptyDir: {}}], containers: [{name: a, volumeMounts: [{name: cache, mountPath: /c}]}]}",
                "spec.containers[0].volumeMounts[0].name",
                "volume cache: only hostPath volumes are supported (podstart takes resolved host paths)",
            ),
            (
                "{initContainers: [{name: a, volumeMounts: [{name: nowhere, mountPath: /c}]}]}",
                "spec.initContainers[0].volumeMounts[0].name",
                "no volume \"nowhere\" in spec.volumes",
            ),
            (
                "{volumes: [{name: d, hostPath: {path: /d, readOnly: true}}], containers: [{name: a}]}",
                "spec.volumes[0].hostPath.readOnly",
                "not supported",
            ),
            (
                "{volumes: [{name: d, hostPath: {path: /d}}, {name: d, hostPath: {path: /e}}], containers: [{name: a}]}",
                "spec.volumes[1].name",
                "volume \"d\" is declared twice",
            ),
            (
                "{containers: [{name: a, resources: {limits: {cpu: abc}}}]}",
                "spec.containers[0].resources.limits.cpu",
                "\"abc\" is not a Kubernetes quantity",
            ),
            (
                "{containers: [{name: a, resources: {requests: {memory: 1 Gi}}}]}",
                "spec.containers[0].resources.requests.memory",
                "\"1 Gi\" is not a Kubernetes quantity",
            ),
            (
                "{containers: [{name: a, resources: {requests: {memory: 8Ei}}}]}",
                "spec.containers[0].resources.requests.memory",
                "\"8Ei\" is out of range",
            ),
            (
                "{containers: [{name: a, resources: {limits: {nvidia.com/gpu: 1}}}]}",
                "spec.containers[0].resources.limits[nvidia.com/gpu]",
                "not supported: podstart sets only cpu and memory",
            ),
            (
                "{containers: [{name: a, resources: {claims: [{name: gpu}]}}]}",
                "spec.containers[0].resources.claims",
                "not supported",
            ),
            (
                "{initContainers: [{name: a, restartPolicy: OnFailure}]}",
                "spec.initContainers[0].restartPolicy",
                "expected one of Always, found \"OnFailure\"",
            ),
            (
                "{restartPolicy: Sometimes, containers: [{name: a}]}",
                "spec.restartPolicy",
                "expected one of Always, OnFailure, Never, found \"Sometimes\"",
            ),
            (
                "{containers: [{name: a, imagePullPolicy: always}]}",
                "spec.containers[0].imagePullPolicy",
                "expected one of Always, IfNotPresent, Never",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: \"80\"}]}]}",
                "spec.containers[0].ports[0].containerPort",
                "expected an integer, found a string",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: 4294967296}]}]}",
                "spec.containers[0].ports[0].containerPort",
                "4294967296 is out of range",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: 80, protocol: tcp}]}]}",
                "spec.containers[0].ports[0].protocol",
                "expected one of TCP, UDP, SCTP, found \"tcp\"",
            ),
            (
                "{containers: [{name: a, startupProbe: {grpc: {port: 9000}}}]}",
                "spec.containers[0].startupProbe.grpc",
                "not supported",
            ),
            (
                "{containers: [{name: a, startupProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}}]}",
                "spec.containers[0].startupProbe",
                "only one handler may be set, found exec and tcpSocket",
            ),
            (
                "{containers: [{name: a, startupProbe: {sleep: {seconds: 1}}}]}",
                "spec.containers[0].startupProbe.sleep",
                "not supported",
            ),
            (
                "{containers: [{name: a, startupProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 5}}]}",
                "spec.containers[0].startupProbe.terminationGracePeriodSeconds",
                "not supported",
            ),
            (
                "{containers: [{name: a, targetContainerName: b}]}",
                "spec.containers[0].targetContainerName",
                "not supported",
            ),
            (
                "{containers: [{name: a, securityContext: {seLinuxOptions: {level: s0}}}]}",
                "spec.containers[0].securityContext.seLinuxOptions",
                "not supported",
            ),
            (
                "{containers: [{name: a, securityContext: {capabilities: {add: [X], keep: [Y]}}}]}",
                "spec.containers[0].securityContext.capabilities.keep",
                "not supported",
            ),
            (
                "{containers: [{name: a, tty: \"yes\"}]}",
                "spec.containers[0].tty",
                "expected true or false, found a string",
            ),
            (
                "{ephemeralContainers: [{name: e, workingdir: /x}]}",
                "spec.ephemeralContainers[0].workingdir",
                "not supported",
            ),
            (
                "{securityContext: {windowsOptions: {}}, containers: [{name: a}]}",
                "spec.securityContext.windowsOptions",
                "not supported",
            ),
            (
                "{securityContext: {seccompProfile: {type: Strict}}}",
                "spec.securityContext.seccompProfile.type",
                "expected one of RuntimeDefault, Unconfined, Localhost",
            ),
            (
                "{securityContext: {sysctls: [{name: a, value: \"1\"}, {name: a, value: \"2\"}]}}",
                "spec.securityContext.sysctls[1].name",
                "sysctl \"a\" is set twice",
            ),
            (
                "{hostAliases: [{ip: 10.0.0.1, hostnames: [db]}], containers: [{name: a}]}",
                "spec.hostAliases",
                "not supported",
            ),
            (
                "{shareProcessNamespace: true, containers: [{name: a}]}",
                "spec.shareProcessNamespace",
                "not supported",
            ),
            (
                "{activeDeadlineSeconds: 60, containers: [{name: a}]}",
                "spec.activeDeadlineSeconds",
                "not supported",
            ),
            (
                "{dnsConfig: {options: [{name: ndots, value: \"2\", extra: 1}]}}",
                "spec.dnsConfig.options[0].extra",
                "not supported",
            ),
            (
                "{containers: {name: a}}",
                "spec.containers",
                "expected a list, found a mapping",
            ),
            (
                "{containers: [nginx]}",
                "spec.containers[0]",
                "expected a mapping, found a string",
            ),
        ];
        for (spec, path, rule) in cases {
            let (got_path, got_rule) = field_error_of(&pod_yaml(spec));
            assert_eq!(got_path, *path, "spec: {spec}");
            assert!(
                got_rule.starts_with(rule),
                "spec: {spec}\nrule: {got_rule}\nwant: {rule}..."
            );
        }
    }

    #[test]
    fn pod_and_metadata_errors_name_the_field_path() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, clusterName: c}\n",
                "metadata.clusterName",
                "not supported",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: 1}}\n",
                "metadata.labels.app",
                "expected a string, found a number (quote it)",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {example.com/x: [a]}}\n",
                "metadata.annotations[example.com/x]",
                "expected a string, found a list",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspce: {}\n",
                "spce",
                "not supported",
            ),
            (
                "apiVersion: v2\nkind: Pod\n",
                "apiVersion",
                "expected \"v1\" for kind Pod, found \"v2\"",
            ),
            (
                "kind: Pod\n",
                "apiVersion",
                "expected \"v1\" for kind Pod, found nothing",
            ),
            ("apiVersion: v1\n", "kind", "missing in document 1"),
            (
                "---\n- a\n- b\n",
                "document 1",
                "expected a Kubernetes object",
            ),
        ];
        for (text, path, rule) in cases {
            let (got_path, got_rule) = field_error_of(text);
            assert_eq!(got_path, *path, "manifest: {text}");
            assert!(
                got_rule.starts_with(rule),
                "manifest: {text}\nrule: {got_rule}\nwant: {rule}..."
            );
        }
    }

    #[test]
    fn field_error_displays_path_then_rule() {
        let error = parse_manifest(&pod_yaml(
            "{containers: [{name: a}, {name: b, envFrom: [{secretRef: {name: s}}]}]}",
        ))
        .expect_err("envFrom is rejected");
        assert_eq!(
            error.to_string(),
            "spec.containers[1].envFrom: not supported"
        );
    }

    #[test]
    fn scheduling_and_api_server_fields_are_warned_about() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  generateName: p-
  resourceVersion: "42"
  creationTimestamp: "2024-01-01T00:00:00Z"
  generation: 3
  finalizers: [example.com/keep]
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: u}]
  managedFields: [{manager: kubectl}]
spec:
  nodeName: node-1
  nodeSelector: {disk: ssd}
  affinity: {nodeAffinity: {}}
  tolerations: [{key: k, operator: Exists}]
  schedulerName: default-scheduler
  priority: 0
  priorityClassName: high
  preemptionPolicy: Never
  topologySpreadConstraints: [{maxSkew: 1}]
  readinessGates: [{conditionType: ready}]
  serviceAccountName: web
  serviceAccount: web
  automountServiceAccountToken: false
  enableServiceLinks: false
  imagePullSecrets: [{name: pull}]
  dnsPolicy: ClusterFirst
  runtimeClassName: gvisor
  volumes:
    - {name: d, hostPath: {path: /d, type: DirectoryOrCreate}}
    - {name: scratch, emptyDir: {}}
  containers:
    - name: a
      image: i
      livenessProbe: {httpGet: {port: 80}}
      readinessProbe: {tcpSocket: {port: 80}}
      resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]
      securityContext:
        seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
      volumeMounts: [{name: d, mountPath: /d}]
status:
  phase: Running
"#;
        let manifest = parse_manifest(text).expect("converts");
        let want = [
            "status: written by the API server; ignored",
            "metadata.generateName: podstart generates no names; ignored (set metadata.name)",
            "metadata.ownerReferences: API server field; ignored by podstart",
            "metadata.resourceVersion: API server field; ignored by podstart",
            "metadata.creationTimestamp: API server field; ignored by podstart",
            "metadata.managedFields: API server field; ignored by podstart",
            "metadata.finalizers: API server field; ignored by podstart",
            "metadata.generation: API server field; ignored by podstart",
            "spec.nodeName: scheduling field; ignored by podstart",
            "spec.nodeSelector: scheduling field; ignored by podstart",
            "spec.affinity: scheduling field; ignored by podstart",
            "spec.tolerations: scheduling field; ignored by podstart",
            "spec.schedulerName: scheduling field; ignored by podstart",
            "spec.priority: scheduling field; ignored by podstart",
            "spec.priorityClassName: scheduling field; ignored by podstart",
            "spec.preemptionPolicy: scheduling field; ignored by podstart",
            "spec.topologySpreadConstraints: scheduling field; ignored by podstart",
            "spec.readinessGates: podstart reports no pod readiness; ignored",
            "spec.serviceAccountName: podstart mounts no service account token; ignored",
            "spec.serviceAccount: podstart mounts no service account token; ignored",
            "spec.automountServiceAccountToken: podstart mounts no service account token; ignored",
            "spec.enableServiceLinks: podstart injects no service environment variables; ignored",
            "spec.volumes[0].hostPath.type: \"DirectoryOrCreate\" is not checked: podstart mounts the host path as given",
            "spec.dnsPolicy: \"ClusterFirst\" is not resolved by podstart: the sandbox gets spec.dnsConfig only (none: the runtime's default resolv.conf)",
            "spec.runtimeClassName: used as the CRI runtime handler as-is (no RuntimeClass lookup)",
            "spec.containers[0].livenessProbe: podstart does not run liveness/readiness probes",
            "spec.containers[0].readinessProbe: podstart does not run liveness/readiness probes",
            "spec.containers[0].resizePolicy: podstart does not resize containers in place; ignored",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: passed to the runtime as-is (Kubernetes would resolve it under the kubelet's seccomp directory)",
            "spec.volumes[1]: emptyDir volume \"scratch\" is not mounted by any container; ignored",
            "spec.imagePullSecrets[0]: Secret \"pull\" is not in the manifest; ignored",
        ];
        assert_eq!(manifest.warnings, want);
        let spec = pod_spec(&manifest);
        assert_eq!(spec.runtime_handler, "gvisor");
        assert_eq!(spec.containers[0].startup_probe, None);
        assert_eq!(
            spec.containers[0]
                .security_context
                .as_ref()
                .and_then(|c| c.seccomp_profile.clone()),
            Some(SeccompProfile {
                r#type: seccomp_profile::Type::Localhost as i32,
                localhost_profile: "profiles/audit.json".into(),
            })
        );
    }

    #[test]
    fn empty_and_null_fields_are_absent() {
        // kubectl's own output style: empty ignored fields warn about nothing;
        // null fields, even unsupported ones, mean nothing.
        let text = pod_yaml(
            "{tolerations: [], nodeSelector: {}, nodeName: \"\", activeDeadlineSeconds: null, \
             containers: [{name: a, image: i, envFrom: null, command: null, resources: {}}]}",
        );
        let manifest = parse_manifest(&text).expect("converts");
        assert_eq!(manifest.warnings, Vec::<String>::new());
        let container = &pod_spec(&manifest).containers[0];
        assert!(container.command.is_empty());
        assert_eq!(container.resources, None);
    }

    #[test]
    fn missing_uid_is_a_fresh_uuid_v4_and_namespace_defaults() {
        let text = pod_yaml("{containers: [{name: a, image: i}]}");
        let uid = |manifest: &Manifest| {
            let metadata = pod_spec(manifest).metadata.clone().expect("metadata");
            assert_eq!(metadata.namespace, "default");
            uuid::Uuid::parse_str(&metadata.uid).expect("a UUID")
        };
        let first = uid(&parse_manifest(&text).expect("converts"));
        let second = uid(&parse_manifest(&text).expect("converts"));
        assert_eq!(first.get_version(), Some(uuid::Version::Random));
        assert_ne!(first, second);
    }

    #[test]
    fn yaml_anchors_and_merge_keys_are_resolved() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - &base
      name: a
      image: i
      env: [{name: MODE, value: fast}]
    - <<: *base
      name: b
"#;
        let manifest = parse_manifest(text).expect("converts");
        let containers = &pod_spec(&manifest).containers;
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[1].name, "b");
        assert_eq!(containers[1].image, "i");
        assert_eq!(containers[1].env, vec![env("MODE", "fast")]);
    }

    #[test]
    fn load_manifest_reads_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pod.yaml");
        std::fs::write(&path, FULL_POD).expect("write");
        let manifest = load_manifest(&path).expect("loads");
        assert_eq!(pod_spec(&manifest).containers.len(), 2);

        let missing = dir.path().join("missing.yaml");
        match load_manifest(&missing) {
            Err(ManifestError::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    #[test]
    fn image_pull_secrets_become_credentials() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: x}\n\
            spec:\n  imagePullSecrets: [{name: lab}, {name: absent}]\n  containers: [{name: c, image: i}]\n\
            ---\napiVersion: v1\nkind: Secret\nmetadata: {name: lab}\ntype: kubernetes.io/dockerconfigjson\n\
            stringData:\n  .dockerconfigjson: '{\"auths\": {\"127.0.0.1:5402\": {\"username\": \"labuser\", \"password\": \"labpass\"}}}'\n";
        let manifest = parse_manifest(text).unwrap();
        let creds = &manifest.request.credentials;
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].server, "127.0.0.1:5402");
        assert_eq!(creds[0].username, "labuser");
        assert_eq!(
            manifest.warnings,
            vec!["spec.imagePullSecrets[1]: Secret \"absent\" is not in the manifest; ignored"]
        );
        let opaque = text.replace("kubernetes.io/dockerconfigjson", "Opaque");
        assert!(matches!(
            parse_manifest(&opaque),
            Err(ManifestError::PullSecret(_))
        ));
    }
}
