//! What a pod requests of the node, as Kubernetes' `PodRequests`
//! (`k8s.io/component-helpers/resource`): the app containers and sidecars
//! summed, against the largest init container (with the sidecars declared
//! before it), and pod-level requests (`spec.resources`) in place of the
//! containers' where set. An unset request takes the limit given beside it
//! (Kubernetes' defaulting), for containers and the pod alike.

use crate::node::Amounts;
use crate::proto::v1::{Container, ContainerRestartPolicy, PodSpec, Resources};

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
}
