//! The content of downward API volume files, from the pod's own fields
//! (Kubernetes' `fieldpath.ExtractFieldPathAsString` and
//! `ExtractContainerResourceValue`): metadata values as they are, label
//! and annotation maps as `key="value"` lines sorted by key, each value
//! quoted as Go's `%q`, and resources as whole numbers of their divisor,
//! rounded up. Pure.
use std::collections::HashMap;

use crate::proto::v1::{Container, PodSpec, ResourceFieldSource, field_source};
use crate::quantity;

/// The node's allocatable amounts, read where a limit is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// The content of a file whose source is `source`.
pub fn content(
    pod: &PodSpec,
    source: &field_source::Source,
    node: NodeAllocatable,
) -> Result<String, String> {
    match source {
        field_source::Source::FieldPath(path) => field_value(pod, path),
        field_source::Source::ResourceField(r) => resource_value(pod, r, node),
    }
}

/// A `metadata.*` field of the pod.
pub fn field_value(pod: &PodSpec, path: &str) -> Result<String, String> {
    let meta = pod.metadata.clone().unwrap_or_default();
    if let Some((map, key)) = subscript(path) {
        let values = match map {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return Err(format!("unsupported fieldPath: {path}")),
        };
        return Ok(values.get(key).cloned().unwrap_or_default());
    }
    match path {
        "metadata.name" => Ok(meta.name),
        "metadata.namespace" => Ok(meta.namespace),
        "metadata.uid" => Ok(meta.uid),
        "metadata.labels" => Ok(format_map(&meta.labels)),
        "metadata.annotations" => Ok(format_map(&meta.annotations)),
        _ => Err(format!("unsupported fieldPath: {path}")),
    }
}

/// `metadata.labels['KEY']` → (`metadata.labels`, `KEY`).
pub fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((map, key))
}

/// Kubernetes' `fieldpath.FormatMap`: `key="value"` lines sorted by key,
/// values quoted as Go's `%q`, joined by newlines.
pub fn format_map(map: &HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| format!("{k}={}", go_quote(&map[*k])))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, `"` and `\`
/// escaped, the usual C escapes, other characters as `\xHH`, `\uHHHH` or
/// `\UHHHHHHHH`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c.is_control() || c.is_whitespace() || is_format(c) => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x1_0000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Format characters Go does not print (soft hyphen, zero-width marks,
/// bidi controls, the byte-order mark).
fn is_format(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// The named container's request or limit, in whole divisors.
fn resource_value(
    pod: &PodSpec,
    r: &ResourceFieldSource,
    node: NodeAllocatable,
) -> Result<String, String> {
    let c: &Container = pod
        .containers
        .iter()
        .chain(&pod.init_containers)
        .find(|c| c.name == r.container_name)
        .ok_or_else(|| format!("container {:?} not found in the pod", r.container_name))?;
    container_resource(pod, c, r, node).map(|v| v.to_string())
}

/// Container `c`'s request or limit in whole divisors, rounded up
/// (`ExtractContainerResourceValue`), for env vars and volume files alike.
/// An unset limit reads as the pod-level limit, else the node's allocatable
/// amount (`MergeContainerResourceLimits`); an unset request as the
/// container's limit (Kubernetes' defaulting), else 0.
pub fn container_resource(
    pod: &PodSpec,
    c: &Container,
    r: &ResourceFieldSource,
    node: NodeAllocatable,
) -> Result<i64, String> {
    let res = c.resources.unwrap_or_default();
    let pod_level = pod.resources.unwrap_or_default();
    let cpu_limit = positive(res.cpu_limit_millis)
        .or(positive(pod_level.cpu_limit_millis))
        .unwrap_or(node.cpu_millis);
    let mem_limit = positive(res.memory_limit_bytes)
        .or(positive(pod_level.memory_limit_bytes))
        .unwrap_or(node.memory_bytes);
    // An unset request is the limit when one is set (Kubernetes' defaulting).
    let cpu_request = positive(res.cpu_request_millis)
        .or(positive(res.cpu_limit_millis))
        .unwrap_or(0);
    let mem_request = positive(res.memory_request_bytes)
        .or(positive(res.memory_limit_bytes))
        .unwrap_or(0);
    let (value, divisor) = match r.resource.as_str() {
        "limits.cpu" => (cpu_limit, cpu_divisor_millis(&r.divisor)?),
        "requests.cpu" => (cpu_request, cpu_divisor_millis(&r.divisor)?),
        "limits.memory" => (mem_limit, memory_divisor_bytes(&r.divisor)?),
        "requests.memory" => (mem_request, memory_divisor_bytes(&r.divisor)?),
        other => return Err(format!("unsupported container resource: {other}")),
    };
    Ok(ceil_div(value, divisor))
}

fn positive(v: i64) -> Option<i64> {
    (v > 0).then_some(v)
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    let q = value / divisor;
    if value % divisor > 0 { q + 1 } else { q }
}

/// The CPU divisors Kubernetes accepts, in millicores: a quantity worth
/// `1m` or `1` (empty is `1`).
pub fn cpu_divisor_millis(divisor: &str) -> Result<i64, String> {
    if divisor.is_empty() {
        return Ok(1000);
    }
    match quantity::parse_millis(divisor) {
        Ok(m @ (1 | 1000)) => Ok(m),
        _ => Err(format!(
            "{} is not a CPU divisor: must be 1m or 1",
            echo(divisor)
        )),
    }
}

/// The memory divisors Kubernetes accepts, in bytes: a quantity worth `1`,
/// `1k` … `1E` or `1Ki` … `1Ei` (empty is `1`).
pub fn memory_divisor_bytes(divisor: &str) -> Result<i64, String> {
    if divisor.is_empty() {
        return Ok(1);
    }
    let accepted = |b: i64| {
        b == 1 || (1..=6).any(|n| b == 1000_i64.pow(n)) || (1..=6).any(|n| b == 1 << (10 * n))
    };
    match quantity::parse_units(divisor) {
        Ok(b) if accepted(b) => Ok(b),
        _ => Err(format!(
            "{} is not a memory divisor: must be 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, \
             1Ti, 1Pi or 1Ei",
            echo(divisor)
        )),
    }
}

/// At most the first characters of `s`, quoted, for messages.
fn echo(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.chars().count() <= SHOWN {
        format!("{s:?}")
    } else {
        format!("{:?}…", s.chars().take(SHOWN).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_rounds_up() {
        let cases = [
            (0, 1, 0),
            (1, 1000, 1),
            (1000, 1000, 1),
            (1001, 1000, 2),
            (7, 2, 4),
        ];
        for (a, b, want) in cases {
            assert_eq!(ceil_div(a, b), want, "{a}/{b}");
        }
    }
    use crate::proto::v1::{PodMetadata, Resources};

    fn pod() -> PodSpec {
        PodSpec {
            metadata: Some(PodMetadata {
                name: "web".into(),
                namespace: "prod".into(),
                uid: "u1".into(),
                labels: HashMap::from([
                    ("zone".into(), "us-east".into()),
                    ("app".into(), "web \"x\"\n".into()),
                ]),
                annotations: HashMap::from([("build".into(), "née\u{7}".into())]),
                ..Default::default()
            }),
            containers: vec![Container {
                name: "app".into(),
                resources: Some(Resources {
                    cpu_request_millis: 250,
                    cpu_limit_millis: 0,
                    memory_request_bytes: 0,
                    memory_limit_bytes: 64 << 20,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    const NODE: NodeAllocatable = NodeAllocatable {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };

    #[test]
    fn metadata_fields() {
        let p = pod();
        for (path, want) in [
            ("metadata.name", "web"),
            ("metadata.namespace", "prod"),
            ("metadata.uid", "u1"),
            (
                "metadata.labels",
                "app=\"web \\\"x\\\"\\n\"\nzone=\"us-east\"",
            ),
            ("metadata.annotations", "build=\"née\\a\""),
            ("metadata.labels['zone']", "us-east"),
            ("metadata.labels['none']", ""),
            ("metadata.annotations['build']", "née\u{7}"),
        ] {
            assert_eq!(field_value(&p, path).unwrap(), want, "{path}");
        }
        assert!(field_value(&p, "spec.nodeName").is_err());
    }

    #[test]
    fn quoting_is_gos() {
        for (s, want) in [
            ("plain", "\"plain\""),
            ("a\tb", "\"a\\tb\""),
            ("\u{1}", "\"\\x01\""),
            ("\u{7f}", "\"\\x7f\""),
            ("\u{a0}", "\"\\u00a0\""),
            ("日本", "\"日本\""),
            ("back\\slash", "\"back\\\\slash\""),
        ] {
            assert_eq!(go_quote(s), want, "{s:?}");
        }
    }

    #[test]
    fn an_unset_limit_reads_the_pods_limit_before_the_nodes() {
        let mut p = pod();
        p.resources = Some(Resources {
            cpu_limit_millis: 1500,
            memory_limit_bytes: 0,
            ..Default::default()
        });
        let read = |p: &PodSpec, resource: &str, divisor: &str| {
            let r = ResourceFieldSource {
                container_name: "app".into(),
                resource: resource.into(),
                divisor: divisor.into(),
            };
            resource_value(p, &r, NODE).unwrap()
        };
        assert_eq!(read(&p, "limits.cpu", "1m"), "1500", "the pod's limit");
        let own = (64u64 << 20).to_string();
        assert_eq!(read(&p, "limits.memory", ""), own, "its own");
        p.containers[0].resources = None;
        assert_eq!(
            read(&p, "limits.memory", ""),
            (8u64 << 30).to_string(),
            "no limit anywhere: the node's allocatable"
        );
    }

    #[test]
    fn resources_round_up_to_their_divisor() {
        let p = pod();
        let read = |resource: &str, divisor: &str| {
            let r = ResourceFieldSource {
                container_name: "app".into(),
                resource: resource.into(),
                divisor: divisor.into(),
            };
            resource_value(&p, &r, NODE)
        };
        assert_eq!(read("requests.cpu", "").unwrap(), "1");
        assert_eq!(read("requests.cpu", "1m").unwrap(), "250");
        // Unset limit: the node's allocatable amount.
        assert_eq!(read("limits.cpu", "1").unwrap(), "4");
        assert_eq!(read("limits.memory", "1Mi").unwrap(), "64");
        assert_eq!(read("limits.memory", "1M").unwrap(), "68");
        // Unset request with a limit: the limit.
        assert_eq!(
            read("requests.memory", "").unwrap(),
            (64u64 << 20).to_string()
        );
        assert!(read("limits.memory", "2Mi").is_err());
        assert_eq!(
            read("limits.memory", "1048576").unwrap(),
            "64",
            "by value, as Kubernetes"
        );
        assert_eq!(read("limits.cpu", "1000m").unwrap(), "4");
        assert!(read("limits.cpu", "100m").is_err());
        assert!(read("limits.storage", "").is_err());
        let mut other = p.clone();
        other.containers[0].name = "other".into();
        assert!(
            resource_value(
                &other,
                &ResourceFieldSource {
                    container_name: "app".into(),
                    resource: "limits.cpu".into(),
                    divisor: String::new(),
                },
                NODE
            )
            .is_err()
        );
    }
}
