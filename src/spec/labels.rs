//! Labels and annotations podstart puts on sandboxes and containers: the
//! kubelet's `io.kubernetes.*` keys (`labels.go` `newPodLabels`,
//! `newContainerLabels`, `newContainerAnnotations`) plus podstart's own
//! `io.podstart.*` labels, and the readers that recover what a stop needs
//! (kind, restart count, grace period, PreStop handler) from a running
//! container without its spec.

use crate::proto::v1::{
    Container, ContainerKind, ContainerPort, ExecAction, Handler, HttpGetAction, HttpHeader,
    PodMetadata, PodSpec, Protocol, SleepAction, TcpSocketAction, TerminationMessagePolicy,
    handler::Action,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Pod name label (sandbox and containers).
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Pod namespace label (sandbox and containers).
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Pod uid label (sandbox and containers).
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Container name label.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// podstart's marker on every sandbox it creates, used to list its pods.
pub const MANAGED: &str = "io.podstart.managed";
/// Value of [`MANAGED`].
pub const MANAGED_VALUE: &str = "true";
/// podstart's container kind label: `init`, `sidecar`, `app` or `ephemeral`.
pub const CONTAINER_KIND: &str = "io.podstart.container.kind";

/// Hex FNV-32a of the container's `{"name","image"}` JSON.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// Same value as [`CONTAINER_HASH`] (the hash covers no resources).
pub const CONTAINER_HASH_WITHOUT_RESOURCES: &str = "io.kubernetes.container.hashWithoutResources";
/// The container's restart count, decimal.
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Where the container writes its termination message.
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// `File` or `FallbackToLogsOnError`.
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
/// The pod's termination grace period in seconds.
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// JSON of the container's PreStop handler, in Kubernetes' shape.
pub const CONTAINER_PRESTOP_HANDLER: &str = "io.kubernetes.container.preStopHandler";
/// JSON array of the container's ports, in Kubernetes' shape.
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";

/// An init container's (or sidecar's) position in the pod's init
/// containers, decimal: sidecars stop in the reverse of this order.
pub const INIT_CONTAINER_INDEX: &str = "io.podstart.container.initIndex";

/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

/// Sandbox labels: the pod's labels, then the `io.kubernetes.pod.*` keys and
/// [`MANAGED`] (these win over pod labels of the same name).
pub fn pod_labels(meta: &PodMetadata) -> HashMap<String, String> {
    let mut labels = meta.labels.clone();
    labels.insert(POD_NAME.into(), meta.name.clone());
    labels.insert(POD_NAMESPACE.into(), meta.namespace.clone());
    labels.insert(POD_UID.into(), meta.uid.clone());
    labels.insert(MANAGED.into(), MANAGED_VALUE.into());
    labels
}

/// Container labels: pod identity, container name and podstart's kind label.
/// The pod's own labels are not copied (the kubelet does not).
pub fn container_labels(
    meta: &PodMetadata,
    container_name: &str,
    kind: ContainerKind,
) -> HashMap<String, String> {
    HashMap::from([
        (POD_NAME.to_string(), meta.name.clone()),
        (POD_NAMESPACE.to_string(), meta.namespace.clone()),
        (POD_UID.to_string(), meta.uid.clone()),
        (CONTAINER_NAME.to_string(), container_name.to_string()),
        (
            CONTAINER_KIND.to_string(),
            kind_label_value(kind).to_string(),
        ),
    ])
}

/// The [`CONTAINER_KIND`] value for a kind; UNSPECIFIED is recorded as `app`.
pub fn kind_label_value(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::Init => "init",
        ContainerKind::Sidecar => "sidecar",
        ContainerKind::Ephemeral => "ephemeral",
        ContainerKind::App | ContainerKind::Unspecified => "app",
    }
}

/// The kind recorded in a container's labels; UNSPECIFIED when absent or unknown.
pub fn container_kind_from_labels(labels: &HashMap<String, String>) -> ContainerKind {
    match labels.get(CONTAINER_KIND).map(String::as_str) {
        Some("init") => ContainerKind::Init,
        Some("sidecar") => ContainerKind::Sidecar,
        Some("app") => ContainerKind::App,
        Some("ephemeral") => ContainerKind::Ephemeral,
        _ => ContainerKind::Unspecified,
    }
}

/// 32-bit FNV-1a.
pub fn fnv1a_32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The kubelet's container hash (PR #124220): FNV-32a of the JSON
/// `{"name":..,"image":..}` of the container as specified.
pub fn container_hash(c: &Container) -> u32 {
    #[derive(Serialize)]
    struct Hashed<'a> {
        name: &'a str,
        image: &'a str,
    }
    // Serialising two strings cannot fail; an empty fallback keeps this total.
    let json = serde_json::to_vec(&Hashed {
        name: &c.name,
        image: &c.image,
    })
    .unwrap_or_default();
    fnv1a_32(&json)
}

/// Container annotations, as `newContainerAnnotations` writes them. The pod's
/// annotations are not copied.
pub fn container_annotations(
    pod: &PodSpec,
    c: &Container,
    restart_count: u32,
) -> HashMap<String, String> {
    let hash = format!("{:x}", container_hash(c));
    let path = if c.termination_message_path.is_empty() {
        DEFAULT_TERMINATION_MESSAGE_PATH.to_string()
    } else {
        c.termination_message_path.clone()
    };
    let policy = match c.termination_message_policy() {
        TerminationMessagePolicy::FallbackToLogsOnError => "FallbackToLogsOnError",
        TerminationMessagePolicy::File | TerminationMessagePolicy::Unspecified => "File",
    };
    let grace = pod
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    let mut ann = HashMap::from([
        (CONTAINER_HASH.to_string(), hash.clone()),
        (CONTAINER_HASH_WITHOUT_RESOURCES.to_string(), hash),
        (
            CONTAINER_RESTART_COUNT.to_string(),
            restart_count.to_string(),
        ),
        (TERMINATION_MESSAGE_PATH.to_string(), path),
        (TERMINATION_MESSAGE_POLICY.to_string(), policy.to_string()),
        (POD_TERMINATION_GRACE_PERIOD.to_string(), grace.to_string()),
    ]);
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Some(json) = handler_json(pre_stop)
    {
        ann.insert(CONTAINER_PRESTOP_HANDLER.to_string(), json);
    }
    if !c.ports.is_empty() {
        ann.insert(CONTAINER_PORTS.to_string(), ports_json(&c.ports));
    }
    if let Some(i) = pod.init_containers.iter().position(|i| i.name == c.name) {
        ann.insert(INIT_CONTAINER_INDEX.to_string(), i.to_string());
    }
    ann
}

/// The PreStop handler recorded in a container's annotations.
pub fn prestop_from_annotations(ann: &HashMap<String, String>) -> Option<Handler> {
    let json = ann.get(CONTAINER_PRESTOP_HANDLER)?;
    let h: K8sHandler = serde_json::from_str(json).ok()?;
    h.into_handler()
}

/// The restart count recorded in a container's annotations.
pub fn restart_count_from_annotations(ann: &HashMap<String, String>) -> Option<u32> {
    ann.get(CONTAINER_RESTART_COUNT)?.parse().ok()
}

/// The pod termination grace period recorded in a container's annotations.
pub fn grace_period_from_annotations(ann: &HashMap<String, String>) -> Option<i64> {
    ann.get(POD_TERMINATION_GRACE_PERIOD)?.parse().ok()
}

/// The init container index recorded in a container's annotations.
pub fn init_index_from_annotations(ann: &HashMap<String, String>) -> Option<usize> {
    ann.get(INIT_CONTAINER_INDEX)?.parse().ok()
}

/// The ports recorded in a container's annotations (names, numbers,
/// protocols, host ports and IPs).
pub fn ports_from_annotations(ann: &HashMap<String, String>) -> Option<Vec<ContainerPort>> {
    let json = ann.get(CONTAINER_PORTS)?;
    let ports: Vec<K8sPort> = serde_json::from_str(json).ok()?;
    Some(
        ports
            .into_iter()
            .map(|p| ContainerPort {
                name: p.name,
                container_port: p.container_port,
                host_port: p.host_port,
                host_ip: p.host_ip,
                protocol: protocol_from_name(&p.protocol) as i32,
            })
            .collect(),
    )
}

/// The JSON of a handler in Kubernetes' `LifecycleHandler` shape, or None for
/// a handler without an action.
pub fn handler_json(h: &Handler) -> Option<String> {
    let k = K8sHandler::from_handler(h)?;
    serde_json::to_string(&k).ok()
}

fn ports_json(ports: &[ContainerPort]) -> String {
    let ports: Vec<K8sPort> = ports
        .iter()
        .map(|p| K8sPort {
            name: p.name.clone(),
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: protocol_name(p.protocol()).to_string(),
            host_ip: p.host_ip.clone(),
        })
        .collect();
    serde_json::to_string(&ports).unwrap_or_default()
}

/// Kubernetes' spelling of a protocol; UNSPECIFIED is TCP.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        Protocol::Tcp | Protocol::Unspecified => "TCP",
    }
}

/// Kubernetes' protocol name → protocol; anything unknown is TCP.
pub fn protocol_from_name(name: &str) -> Protocol {
    match name {
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

// Kubernetes' JSON shapes (camelCase, empty fields omitted).

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sPort {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    host_port: i32,
    container_port: i32,
    #[serde(default)]
    protocol: String,
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    host_ip: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sHandler {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<K8sExec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_get: Option<K8sHttpGet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<K8sTcpSocket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sleep: Option<K8sSleep>,
}

#[derive(Serialize, Deserialize)]
struct K8sExec {
    #[serde(default)]
    command: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sHttpGet {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    path: String,
    port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scheme: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    http_headers: Vec<K8sHeader>,
}

#[derive(Serialize, Deserialize)]
struct K8sHeader {
    name: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct K8sTcpSocket {
    port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    host: String,
}

#[derive(Serialize, Deserialize)]
struct K8sSleep {
    seconds: i64,
}

/// Kubernetes' `IntOrString`: a number when the port is numeric, else its name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    fn from_port(p: &str) -> Self {
        match p.parse::<i64>() {
            Ok(n) if n.to_string() == p => IntOrString::Int(n),
            _ => IntOrString::Str(p.to_string()),
        }
    }

    fn into_port(self) -> String {
        match self {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::Str(s) => s,
        }
    }
}

impl K8sHandler {
    fn from_handler(h: &Handler) -> Option<Self> {
        let mut k = K8sHandler {
            exec: None,
            http_get: None,
            tcp_socket: None,
            sleep: None,
        };
        match h.action.as_ref()? {
            Action::Exec(e) => {
                k.exec = Some(K8sExec {
                    command: e.command.clone(),
                })
            }
            Action::HttpGet(g) => {
                k.http_get = Some(K8sHttpGet {
                    path: g.path.clone(),
                    port: IntOrString::from_port(&g.port),
                    host: g.host.clone(),
                    scheme: g.scheme.clone(),
                    http_headers: g
                        .headers
                        .iter()
                        .map(|h| K8sHeader {
                            name: h.name.clone(),
                            value: h.value.clone(),
                        })
                        .collect(),
                })
            }
            Action::Sleep(s) => k.sleep = Some(K8sSleep { seconds: s.seconds }),
            // A probe action only: lifecycle hooks never carry it (validation).
            Action::Grpc(_) => return None,
            Action::TcpSocket(t) => {
                k.tcp_socket = Some(K8sTcpSocket {
                    port: IntOrString::from_port(&t.port),
                    host: t.host.clone(),
                })
            }
        }
        Some(k)
    }

    fn into_handler(self) -> Option<Handler> {
        let action = if let Some(e) = self.exec {
            Action::Exec(ExecAction { command: e.command })
        } else if let Some(g) = self.http_get {
            Action::HttpGet(HttpGetAction {
                scheme: g.scheme,
                host: g.host,
                port: g.port.into_port(),
                path: g.path,
                headers: g
                    .http_headers
                    .into_iter()
                    .map(|h| HttpHeader {
                        name: h.name,
                        value: h.value,
                    })
                    .collect(),
            })
        } else if let Some(s) = self.sleep {
            Action::Sleep(SleepAction { seconds: s.seconds })
        } else if let Some(t) = self.tcp_socket {
            Action::TcpSocket(TcpSocketAction {
                host: t.host,
                port: t.port.into_port(),
            })
        } else {
            return None;
        };
        Some(Handler {
            action: Some(action),
        })
    }
}

#[cfg(test)]
mod tests;
