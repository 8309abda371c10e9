//! What podstart knows about the node it runs on, for the pod fields only
//! the node can answer (the downward API's `spec.nodeName`,
//! `status.hostIP(s)`, an unset limit read as the node's allocatable amount)
//! and for the node's admission of what pods request: the node's name, its
//! IPs, its allocatable CPU and memory (the machine's capacity minus
//! `--system-reserved`, as the kubelet's), and the floor of the OOM score
//! adjustments podstart asks for.
//!
//! The machine is read once, when `serve` starts (`Node::from_machine`);
//! everything else here is pure.

use std::net::{IpAddr, UdpSocket};

use crate::quantity;

/// CPU and memory, in millicores and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Amounts {
    /// Each amount minus `other`'s, never below zero.
    pub fn minus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis).max(0),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes).max(0),
        }
    }

    /// Each amount plus `other`'s.
    pub fn plus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }
}

/// The node as podstart sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `spec.nodeName` (`--node-name`; default the machine's host name, in
    /// lower case as the kubelet's default).
    pub name: String,
    /// `status.hostIPs` (`--node-ip`; default the source addresses of the
    /// default routes).
    pub ips: Vec<String>,
    /// The machine's CPUs online and memory.
    pub capacity: Amounts,
    /// What pods may request together: capacity minus `--system-reserved`.
    pub allocatable: Amounts,
    /// With `--restrict-oom-score-adj`: no container is asked for an OOM
    /// score adjustment below this (podstart's own, at least 0), as
    /// containerd's `restrict_oom_score_adj`. None: the kubelet's values.
    pub oom_score_adj_floor: Option<i64>,
}

impl Default for Node {
    /// The machine as it is, without reserved amounts or IPs.
    fn default() -> Self {
        let capacity = machine_capacity();
        Node {
            name: machine_hostname(),
            ips: Vec::new(),
            capacity,
            allocatable: capacity,
            oom_score_adj_floor: None,
        }
    }
}

/// Why `--system-reserved` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservedError {
    #[error("{0:?} is not NAME=QUANTITY")]
    Pair(String),
    #[error("unknown resource {0:?} (cpu or memory)")]
    Resource(String),
    #[error("{name}: {source}")]
    Quantity {
        name: String,
        source: quantity::QuantityError,
    },
    #[error("{0}: must not be negative")]
    Negative(String),
}

/// Parses the kubelet's `--system-reserved` form: `cpu=100m,memory=256Mi`
/// (either may be left out; empty: nothing reserved).
pub fn parse_reserved(text: &str) -> Result<Amounts, ReservedError> {
    let mut out = Amounts::default();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| ReservedError::Pair(pair.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        let wrap = |source| ReservedError::Quantity {
            name: name.to_string(),
            source,
        };
        let amount = match name {
            "cpu" => &mut out.cpu_millis,
            "memory" => &mut out.memory_bytes,
            other => return Err(ReservedError::Resource(other.to_string())),
        };
        *amount = if name == "cpu" {
            quantity::parse_millis(value).map_err(wrap)?
        } else {
            quantity::parse_units(value).map_err(wrap)?
        };
        if *amount < 0 {
            return Err(ReservedError::Negative(name.to_string()));
        }
    }
    Ok(out)
}

/// The machine's host name in lower case (`/proc/sys/kernel/hostname`),
/// empty when it cannot be read.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// CPUs online (`/sys/devices/system/cpu/online`, else the parallelism
/// available to podstart) and `MemTotal`.
pub fn machine_capacity() -> Amounts {
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| count_cpu_list(s.trim()))
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as i64)
        })
        .unwrap_or(1);
    Amounts {
        cpu_millis: cpus.saturating_mul(1000),
        memory_bytes: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| mem_total(&s))
            .unwrap_or(FALLBACK_MEMORY_BYTES),
    }
}

/// Memory assumed when /proc/meminfo cannot be read: 16 GiB.
pub const FALLBACK_MEMORY_BYTES: i64 = 1 << 34;

/// `MemTotal` of a /proc/meminfo text, in bytes.
pub fn mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024).filter(|b| *b > 0)
}

/// The number of CPUs in a kernel CPU list (`0-3,6,8-9` → 7).
pub fn count_cpu_list(list: &str) -> Option<i64> {
    let mut n = 0i64;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                b - a + 1
            }
            None => {
                part.parse::<i64>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// The source addresses the kernel picks for the default routes, IPv4
/// first: a UDP socket "connected" to a documentation address sends
/// nothing, and its local address is the default route's interface
/// address. Empty when the node has no default route.
pub fn default_route_ips() -> Vec<String> {
    let probe = |bind: &str, to: &str| -> Option<IpAddr> {
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(to).ok()?;
        Some(s.local_addr().ok()?.ip())
    };
    [("0.0.0.0:0", "192.0.2.1:9"), ("[::]:0", "[2001:db8::1]:9")]
        .into_iter()
        .filter_map(|(bind, to)| probe(bind, to))
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_string())
        .collect()
}

/// podstart's own OOM score adjustment (`/proc/self/oom_score_adj`), 0 when
/// it cannot be read.
pub fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_amounts_parse_as_the_kubelet_flag() {
        let cases: &[(&str, Result<Amounts, &str>)] = &[
            ("", Ok(Amounts::default())),
            (
                "cpu=100m,memory=256Mi",
                Ok(Amounts {
                    cpu_millis: 100,
                    memory_bytes: 256 << 20,
                }),
            ),
            (
                " memory=1G ",
                Ok(Amounts {
                    cpu_millis: 0,
                    memory_bytes: 1_000_000_000,
                }),
            ),
            ("cpu", Err("\"cpu\" is not NAME=QUANTITY")),
            ("gpu=1", Err("unknown resource \"gpu\" (cpu or memory)")),
            ("cpu=-1", Err("cpu: must not be negative")),
        ];
        for (text, want) in cases {
            let got = parse_reserved(text).map_err(|e| e.to_string());
            assert_eq!(got, (*want).map_err(String::from), "{text:?}");
        }
        assert!(parse_reserved("cpu=lots").is_err());
    }

    #[test]
    fn cpu_lists_count_every_cpu() {
        let cases = [
            ("0", Some(1)),
            ("0-3", Some(4)),
            ("0-3,6,8-9", Some(7)),
            ("", None),
            ("3-1", None),
            ("x", None),
        ];
        for (list, want) in cases {
            assert_eq!(count_cpu_list(list), want, "{list:?}");
        }
    }

    #[test]
    fn the_machine_has_some_capacity() {
        let c = machine_capacity();
        assert!(c.cpu_millis >= 1000 && c.memory_bytes > 0, "{c:?}");
    }

    #[test]
    fn amounts_never_go_below_zero() {
        let a = Amounts {
            cpu_millis: 100,
            memory_bytes: 10,
        };
        let b = Amounts {
            cpu_millis: 300,
            memory_bytes: 4,
        };
        assert_eq!(
            a.minus(b),
            Amounts {
                cpu_millis: 0,
                memory_bytes: 6
            }
        );
        assert_eq!(a.plus(b).cpu_millis, 400);
    }
}
