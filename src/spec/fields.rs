//! The pod's own fields as env values (Kubernetes' downward API in env:
//! `fieldRef` and `resourceFieldRef`, the kubelet's `podFieldSelectorRuntimeValue`
//! and `containerResourceRuntimeValue`): which field paths env may read,
//! the divisors a resource may be given in, and the value each resolves to
//! for a pod on a node once its sandbox has IPs.

use crate::node::Node;
use crate::proto::v1::{Container, FieldSource, PodSpec, ResourceFieldSource, field_source};
use crate::volumes::{NodeAllocatable, downward};

/// Field paths env may read as they are (`validEnvDownwardAPIFieldPathExpressions`).
pub const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Resources a `resource_field` may read.
pub const RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// Divisors of CPU (`validContainerResourceDivisorForCPU`).
pub const CPU_DIVISORS: &[&str] = &["1m", "1"];
/// Divisors of memory (`validContainerResourceDivisorForMemory`).
pub const MEMORY_DIVISORS: &[&str] = &[
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];

/// The longest value a field an env var reads resolves to, but for
/// annotations (bounded by the pod's own, checked against the pod):
/// names and service accounts are DNS-1123 subdomains, label values 63
/// bytes, a uid at most 4096 bytes, IP lists a few addresses, resources a
/// decimal i64.
pub const FIELD_VALUE_MAX: usize = 4096;

/// `metadata.labels['KEY']` or `metadata.annotations['KEY']`: which map and
/// the key (`SplitMaybeSubscriptedPath`).
pub fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    match map {
        "metadata.labels" | "metadata.annotations" => Some((map, key)),
        _ => None,
    }
}

/// Why an env var's `value_from` is refused: the field (relative to the
/// `value_from`) and the rule.
pub fn check_env_source(src: &FieldSource) -> Result<(), (String, String)> {
    match &src.source {
        None => Err((
            "source".into(),
            "field_path or resource_field is required".into(),
        )),
        Some(field_source::Source::FieldPath(p)) => {
            if ENV_FIELD_PATHS.contains(&p.as_str()) {
                return Ok(());
            }
            match subscript(p) {
                Some((_, key)) if !key.is_empty() && key.len() <= 253 + 1 + 63 => Ok(()),
                _ => Err((
                    "field_path".into(),
                    format!(
                        "must be one of {}, metadata.labels['KEY'] or \
                         metadata.annotations['KEY'] (env takes no whole label or \
                         annotation map)",
                        ENV_FIELD_PATHS.join(", ")
                    ),
                )),
            }
        }
        Some(field_source::Source::ResourceField(r)) => check_resource_field(r),
    }
}

/// A resource and its divisor, as Kubernetes validates them.
pub fn check_resource_field(r: &ResourceFieldSource) -> Result<(), (String, String)> {
    if !RESOURCES.contains(&r.resource.as_str()) {
        return Err((
            "resource_field.resource".into(),
            format!("must be one of {}", RESOURCES.join(", ")),
        ));
    }
    if r.divisor.is_empty() {
        return Ok(());
    }
    let allowed = if r.resource.ends_with(".cpu") {
        CPU_DIVISORS
    } else {
        MEMORY_DIVISORS
    };
    if !allowed.contains(&r.divisor.as_str()) {
        return Err((
            "resource_field.divisor".into(),
            format!(
                "must be a quantity among {} for {}",
                allowed.join(", "),
                r.resource
            ),
        ));
    }
    Ok(())
}

/// What a field resolves against: the pod, the container reading it, the
/// node, and the sandbox's IPs.
#[derive(Debug, Clone, Copy)]
pub struct FieldContext<'a> {
    pub pod: &'a PodSpec,
    pub container: &'a Container,
    pub node: &'a Node,
    pub pod_ips: &'a [String],
}

/// The value of `src` (a source validation accepted; anything else, or a
/// label or annotation the pod lacks, is empty). A host-network pod's IPs
/// are the node's, as in Kubernetes.
pub fn resolve(ctx: &FieldContext<'_>, src: &FieldSource) -> String {
    let meta = ctx.pod.metadata.clone().unwrap_or_default();
    let pod_ips = if ctx.pod.host_network && ctx.pod_ips.is_empty() {
        ctx.node.ips.as_slice()
    } else {
        ctx.pod_ips
    };
    match &src.source {
        None => String::new(),
        Some(field_source::Source::FieldPath(p)) => match p.as_str() {
            "metadata.name" => meta.name,
            "metadata.namespace" => meta.namespace,
            "metadata.uid" => meta.uid,
            "spec.nodeName" => ctx.node.name.clone(),
            "spec.serviceAccountName" => ctx.pod.service_account_name.clone(),
            "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
            "status.podIPs" => pod_ips.join(","),
            "status.hostIP" => ctx.node.ips.first().cloned().unwrap_or_default(),
            "status.hostIPs" => ctx.node.ips.join(","),
            other => match subscript(other) {
                Some(("metadata.labels", key)) => meta.labels.get(key).cloned(),
                Some(("metadata.annotations", key)) => meta.annotations.get(key).cloned(),
                _ => None,
            }
            .unwrap_or_default(),
        },
        Some(field_source::Source::ResourceField(r)) => {
            let c = if r.container_name.is_empty() {
                Some(ctx.container)
            } else {
                ctx.pod
                    .init_containers
                    .iter()
                    .chain(&ctx.pod.containers)
                    .find(|c| c.name == r.container_name)
            };
            c.map(|c| resource_value(ctx.pod, c, ctx.node, r).to_string())
                .unwrap_or_default()
        }
    }
}

/// A container's resource in units of the divisor, rounded up: the rule
/// downward API volume files follow too (`volumes::downward`). A divisor
/// validation refused reads as 0.
pub fn resource_value(pod: &PodSpec, c: &Container, node: &Node, r: &ResourceFieldSource) -> i64 {
    let node = NodeAllocatable {
        cpu_millis: node.allocatable.cpu_millis,
        memory_bytes: node.allocatable.memory_bytes,
    };
    downward::container_resource(pod, c, r, node).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Amounts;
    use crate::proto::v1::{PodMetadata, Resources};
    use std::collections::HashMap;

    fn path(p: &str) -> FieldSource {
        FieldSource {
            source: Some(field_source::Source::FieldPath(p.into())),
        }
    }

    fn res(container: &str, resource: &str, divisor: &str) -> FieldSource {
        FieldSource {
            source: Some(field_source::Source::ResourceField(ResourceFieldSource {
                container_name: container.into(),
                resource: resource.into(),
                divisor: divisor.into(),
            })),
        }
    }

    fn node() -> Node {
        Node {
            name: "node-1".into(),
            ips: vec!["192.168.1.5".into(), "fd00::5".into()],
            capacity: Amounts {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
            },
            allocatable: Amounts {
                cpu_millis: 3900,
                memory_bytes: 7 << 30,
            },
            oom_score_adj_floor: None,
        }
    }

    fn pod() -> PodSpec {
        PodSpec {
            metadata: Some(PodMetadata {
                name: "web".into(),
                namespace: "shop".into(),
                uid: "u-1".into(),
                labels: HashMap::from([("app".into(), "web".into())]),
                annotations: HashMap::from([("team".into(), "blue".into())]),
                ..Default::default()
            }),
            service_account_name: "builder".into(),
            containers: vec![
                Container {
                    name: "main".into(),
                    resources: Some(Resources {
                        cpu_request_millis: 250,
                        cpu_limit_millis: 1500,
                        memory_request_bytes: 0,
                        memory_limit_bytes: (64 << 20) + 1,
                    }),
                    ..Default::default()
                },
                Container {
                    name: "bare".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn field_paths_resolve_to_the_pods_fields() {
        let (p, n) = (pod(), node());
        let ips = vec!["10.88.0.7".to_string(), "fd88::7".to_string()];
        let ctx = FieldContext {
            pod: &p,
            container: &p.containers[0],
            node: &n,
            pod_ips: &ips,
        };
        let cases = [
            (path("metadata.name"), "web"),
            (path("metadata.namespace"), "shop"),
            (path("metadata.uid"), "u-1"),
            (path("metadata.labels['app']"), "web"),
            (path("metadata.labels['absent']"), ""),
            (path("metadata.annotations['team']"), "blue"),
            (path("spec.nodeName"), "node-1"),
            (path("spec.serviceAccountName"), "builder"),
            (path("status.podIP"), "10.88.0.7"),
            (path("status.podIPs"), "10.88.0.7,fd88::7"),
            (path("status.hostIP"), "192.168.1.5"),
            (path("status.hostIPs"), "192.168.1.5,fd00::5"),
            (res("", "limits.cpu", ""), "2"),
            (res("", "limits.cpu", "1m"), "1500"),
            (res("", "requests.cpu", "1m"), "250"),
            (res("", "requests.cpu", ""), "1"),
            (res("", "limits.memory", "1Mi"), "65"),
            (res("", "limits.memory", ""), "67108865"),
            // An unset request defaults to the limit.
            (res("", "requests.memory", "1"), "67108865"),
            // An unset limit reads as the node's allocatable amount.
            (res("bare", "limits.cpu", "1m"), "3900"),
            (res("bare", "limits.memory", "1Gi"), "7"),
            (res("bare", "requests.cpu", "1m"), "0"),
            (res("main", "limits.cpu", "1"), "2"),
        ];
        for (src, want) in cases {
            assert_eq!(resolve(&ctx, &src), want, "{src:?}");
        }
    }

    #[test]
    fn a_pod_limit_bounds_a_container_without_its_own() {
        let (mut p, n) = (pod(), node());
        p.resources = Some(Resources {
            cpu_limit_millis: 800,
            memory_limit_bytes: 1 << 30,
            ..Default::default()
        });
        let ctx = FieldContext {
            pod: &p,
            container: &p.containers[1],
            node: &n,
            pod_ips: &[],
        };
        assert_eq!(resolve(&ctx, &res("", "limits.cpu", "1m")), "800");
        assert_eq!(resolve(&ctx, &res("", "limits.memory", "1Mi")), "1024");
        assert_eq!(resolve(&ctx, &path("status.podIP")), "");
        let host = PodSpec {
            host_network: true,
            ..p.clone()
        };
        let ctx = FieldContext { pod: &host, ..ctx };
        assert_eq!(resolve(&ctx, &path("status.podIPs")), "192.168.1.5,fd00::5");
    }

    #[test]
    fn env_takes_only_the_kubernetes_field_paths_and_divisors() {
        let ok = [
            path("metadata.name"),
            path("status.podIPs"),
            path("metadata.labels['app.kubernetes.io/name']"),
            res("", "limits.memory", "1Mi"),
            res("x", "requests.cpu", "1m"),
            res("", "requests.cpu", ""),
        ];
        for src in ok {
            assert_eq!(check_env_source(&src), Ok(()), "{src:?}");
        }
        let bad = [
            (path("metadata.labels"), "field_path"),
            (path("metadata.annotations"), "field_path"),
            (path("metadata.labels['']"), "field_path"),
            (path("spec.hostname"), "field_path"),
            (FieldSource { source: None }, "source"),
            (res("", "limits.gpu", ""), "resource_field.resource"),
            (res("", "limits.cpu", "1Mi"), "resource_field.divisor"),
            (res("", "limits.memory", "1m"), "resource_field.divisor"),
            (res("", "limits.memory", "2Mi"), "resource_field.divisor"),
        ];
        for (src, field) in bad {
            assert_eq!(check_env_source(&src).unwrap_err().0, field, "{src:?}");
        }
    }
}
