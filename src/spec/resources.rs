//! What a pod requests of the node, as Kubernetes' `PodRequests`
//! (`k8s.io/component-helpers/resource`): the app containers and sidecars
//! summed, against the largest init container (with the sidecars declared
//! before it), and pod-level requests (`spec.resources`) in place of the
//! containers' where set. An unset request takes the limit given beside it
//! (Kubernetes' defaulting), for containers and the pod alike.

use crate::node::Amounts;
use crate::proto::v1::{Container, ContainerRestartPolicy, PodSpec, Resources};
use k8s_cri::v1 as cri;

/// CPU shares of one CPU.
const SHARES_PER_CPU: i64 = 1024;
/// Smallest CPU shares value (also used when nothing is requested).
pub const MIN_SHARES: i64 = 2;
/// Largest CPU shares value.
pub const MAX_SHARES: i64 = 262_144;
/// CFS period the kubelet uses, in microseconds.
pub const CPU_PERIOD_US: i64 = 100_000;
/// Smallest CFS quota, in microseconds.
pub const MIN_QUOTA_US: i64 = 1000;

/// The kubelet's `MilliCPUToShares`: 0 → 2 (the minimum), else
/// `milli * 1024 / 1000` clamped to [2, 262144].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The kubelet's `milliCPUToQuota`: 0 for no limit, else
/// `milli * period / 1000`, at least 1000 µs.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA_US)
}

/// Requests with Kubernetes' defaulting: an unset (zero) request takes the
/// limit.
pub fn requests_of(r: Option<&Resources>) -> Amounts {
    let r = r.copied().unwrap_or_default();
    let or = |req: i64, lim: i64| if req > 0 { req } else { lim.max(0) };
    Amounts {
        cpu_millis: or(r.cpu_request_millis, r.cpu_limit_millis),
        memory_bytes: or(r.memory_request_bytes, r.memory_limit_bytes),
    }
}

fn container_requests(c: &Container) -> Amounts {
    requests_of(c.resources.as_ref())
}

fn max(a: Amounts, b: Amounts) -> Amounts {
    Amounts {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
    }
}

/// The containers' requests alone (`AggregateContainerRequests`).
pub fn containers_requests(pod: &PodSpec) -> Amounts {
    let mut reqs = pod
        .containers
        .iter()
        .fold(Amounts::default(), |sum, c| sum.plus(container_requests(c)));
    let mut sidecars = Amounts::default();
    let mut max_init = Amounts::default();
    for c in &pod.init_containers {
        let own = container_requests(c);
        let during = if c.restart_policy() == ContainerRestartPolicy::Always {
            reqs = reqs.plus(own);
            sidecars = sidecars.plus(own);
            sidecars
        } else {
            own.plus(sidecars)
        };
        max_init = max(max_init, during);
    }
    max(reqs, max_init)
}

/// The pod's effective requests: pod-level requests where set (each
/// resource on its own), else the containers'.
pub fn pod_requests(pod: &PodSpec) -> Amounts {
    let containers = containers_requests(pod);
    let pod_level = requests_of(pod.resources.as_ref());
    Amounts {
        cpu_millis: if pod_level.cpu_millis > 0 {
            pod_level.cpu_millis
        } else {
            containers.cpu_millis
        },
        memory_bytes: if pod_level.memory_bytes > 0 {
            pod_level.memory_bytes
        } else {
            containers.memory_bytes
        },
    }
}

/// Whether the pod sets pod-level requests or limits (Kubernetes'
/// `IsPodLevelResourcesSet`, CPU and memory).
pub fn pod_level_set(pod: &PodSpec) -> bool {
    pod.resources.is_some_and(|r| {
        r.cpu_request_millis > 0
            || r.cpu_limit_millis > 0
            || r.memory_request_bytes > 0
            || r.memory_limit_bytes > 0
    })
}

/// The pod's limits: pod-level ones where set, else the sum of its app
/// containers' and sidecars' when every one of them has that limit (0:
/// none).
pub fn pod_limits(pod: &PodSpec) -> Amounts {
    let pod_level = pod.resources.unwrap_or_default();
    let running: Vec<Resources> = pod
        .containers
        .iter()
        .chain(
            pod.init_containers
                .iter()
                .filter(|c| c.restart_policy() == ContainerRestartPolicy::Always),
        )
        .map(|c| c.resources.unwrap_or_default())
        .collect();
    let summed = |own: fn(&Resources) -> i64| {
        if running.iter().all(|r| own(r) > 0) {
            running.iter().map(own).fold(0i64, i64::saturating_add)
        } else {
            0
        }
    };
    Amounts {
        cpu_millis: if pod_level.cpu_limit_millis > 0 {
            pod_level.cpu_limit_millis
        } else {
            summed(|r| r.cpu_limit_millis)
        },
        memory_bytes: if pod_level.memory_limit_bytes > 0 {
            pod_level.memory_limit_bytes
        } else {
            summed(|r| r.memory_limit_bytes)
        },
    }
}

/// The sandbox's resources (`calculateSandboxResources`: the CRI's
/// `LinuxPodSandboxConfig.resources`): shares from the pod's requests,
/// quota and memory limit from its limits; none for a pod that requests
/// and limits nothing.
pub fn sandbox_resources(pod: &PodSpec) -> Option<cri::LinuxContainerResources> {
    let (req, lim) = (pod_requests(pod), pod_limits(pod));
    if req == Amounts::default() && lim == Amounts::default() {
        return None;
    }
    let mut out = cri::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(req.cpu_millis),
        ..Default::default()
    };
    if lim.cpu_millis > 0 {
        out.cpu_period = CPU_PERIOD_US;
        out.cpu_quota = milli_cpu_to_quota(lim.cpu_millis, CPU_PERIOD_US);
    }
    out.memory_limit_in_bytes = lim.memory_bytes;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, cpu: i64, mem: i64, sidecar: bool) -> Container {
        let mut c = Container {
            name: name.into(),
            resources: Some(Resources {
                cpu_request_millis: cpu,
                memory_request_bytes: mem,
                ..Default::default()
            }),
            ..Default::default()
        };
        if sidecar {
            c.set_restart_policy(ContainerRestartPolicy::Always);
        }
        c
    }

    fn amounts(cpu_millis: i64, memory_bytes: i64) -> Amounts {
        Amounts {
            cpu_millis,
            memory_bytes,
        }
    }

    /// (init containers, app containers, pod-level resources, requests)
    type Case = (Vec<Container>, Vec<Container>, Option<Resources>, Amounts);

    #[test]
    fn effective_requests_follow_kubernetes() {
        let cases: Vec<Case> = vec![
            (vec![], vec![c("a", 100, 10, false)], None, amounts(100, 10)),
            (
                vec![],
                vec![c("a", 100, 10, false), c("b", 200, 20, false)],
                None,
                amounts(300, 30),
            ),
            // A big init container dominates.
            (
                vec![c("i", 1000, 5, false)],
                vec![c("a", 100, 10, false)],
                None,
                amounts(1000, 10),
            ),
            // Sidecars add to the apps, and to the init containers after them.
            (
                vec![c("s", 50, 1, true), c("i", 500, 1, false)],
                vec![c("a", 100, 10, false)],
                None,
                amounts(550, 11),
            ),
            (
                vec![c("i", 500, 1, false), c("s", 50, 1, true)],
                vec![c("a", 100, 10, false)],
                None,
                amounts(500, 11),
            ),
            // A limit alone is the request.
            (
                vec![],
                vec![Container {
                    resources: Some(Resources {
                        cpu_limit_millis: 700,
                        memory_limit_bytes: 70,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                None,
                amounts(700, 70),
            ),
            // Pod-level requests replace the containers', resource by resource.
            (
                vec![],
                vec![c("a", 100, 10, false)],
                Some(Resources {
                    cpu_request_millis: 2000,
                    ..Default::default()
                }),
                amounts(2000, 10),
            ),
            (
                vec![],
                vec![c("a", 100, 10, false)],
                Some(Resources {
                    memory_limit_bytes: 64,
                    ..Default::default()
                }),
                amounts(100, 64),
            ),
        ];
        for (init, apps, pod_level, want) in cases {
            let pod = PodSpec {
                init_containers: init,
                containers: apps,
                resources: pod_level,
                ..Default::default()
            };
            assert_eq!(pod_requests(&pod), want, "{pod:?}");
        }
    }

    #[test]
    fn the_sandbox_carries_the_pods_requests_and_limits() {
        let limited = |name: &str, cpu: i64, mem: i64| Container {
            name: name.into(),
            resources: Some(Resources {
                cpu_request_millis: cpu,
                cpu_limit_millis: cpu,
                memory_request_bytes: mem,
                memory_limit_bytes: mem,
            }),
            ..Default::default()
        };
        let mut pod = PodSpec {
            containers: vec![limited("a", 500, 100), limited("b", 250, 50)],
            ..Default::default()
        };
        let r = sandbox_resources(&pod).unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (768, 75_000, 150)
        );
        // A container without a limit leaves the sum without one.
        pod.containers.push(c("c", 100, 10, false));
        let r = sandbox_resources(&pod).unwrap();
        assert_eq!((r.cpu_quota, r.memory_limit_in_bytes), (0, 0));
        // Pod-level limits win.
        pod.resources = Some(Resources {
            cpu_limit_millis: 2000,
            memory_limit_bytes: 1000,
            ..Default::default()
        });
        let r = sandbox_resources(&pod).unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2048, 200_000, 1000)
        );
        assert_eq!(
            sandbox_resources(&PodSpec {
                containers: vec![Container::default()],
                ..Default::default()
            }),
            None
        );
    }
}
