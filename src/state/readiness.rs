//! Which containers are ready, kept in memory per pod: the runtime knows
//! nothing of readiness. A pod is tracked from its start (or its recovery)
//! to its stop: which of its containers count for the pod's Ready condition
//! (app containers and sidecars), which of them wait for a probe to be
//! ready (a readiness probe, or an app container's startup probe), and the
//! probes' verdicts, each for one container instance. A running container
//! without a probe is ready; an init or ephemeral container never is.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use crate::proto::v1::{
    ContainerKind, ContainerRestartPolicy, ContainerState, Pod, PodSpec, SandboxState,
};

/// The readiness of every tracked pod, by uid. Cheap to clone; clones share
/// one table.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pods: Arc<Mutex<HashMap<String, Tracked>>>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// App containers and sidecars: the pod is ready when each is.
    counted: Vec<String>,
    /// Those ready only once a probe says so.
    gated: HashSet<String>,
    /// name → (container id, ready) as the probes last said.
    verdicts: HashMap<String, (String, bool)>,
}

impl Tracked {
    fn ready(&self, name: &str, id: &str) -> bool {
        !self.gated.contains(name)
            || self
                .verdicts
                .get(name)
                .is_some_and(|(of, ready)| of == id && *ready)
    }
}

impl Readiness {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tracks a pod as `pod` describes it, keeping verdicts already given
    /// for containers that still wait on a probe.
    pub fn track(&self, uid: &str, pod: &PodSpec) {
        let sidecars = pod
            .init_containers
            .iter()
            .filter(|c| c.restart_policy() == ContainerRestartPolicy::Always)
            .map(|c| (c, false));
        let apps = pod.containers.iter().map(|c| (c, true));
        let mut counted = Vec::new();
        let mut gated = HashSet::new();
        for (c, app) in sidecars.chain(apps) {
            counted.push(c.name.clone());
            if c.readiness_probe.is_some() || (app && c.startup_probe.is_some()) {
                gated.insert(c.name.clone());
            }
        }
        let mut pods = self.lock();
        let t = pods.entry(uid.to_string()).or_default();
        t.verdicts.retain(|name, _| gated.contains(name));
        t.counted = counted;
        t.gated = gated;
    }

    /// Records a probe's verdict on one container instance; true when the
    /// container's readiness changed.
    pub fn set(&self, uid: &str, name: &str, id: &str, ready: bool) -> bool {
        let mut pods = self.lock();
        let Some(t) = pods.get_mut(uid) else {
            return false;
        };
        if !t.gated.contains(name) {
            return false;
        }
        let before = t.ready(name, id);
        t.verdicts.insert(name.to_string(), (id.to_string(), ready));
        before != ready
    }

    /// Drops every verdict of the pod (it is being stopped): its gated
    /// containers are not ready.
    pub fn clear(&self, uid: &str) {
        if let Some(t) = self.lock().get_mut(uid) {
            t.verdicts.clear();
        }
    }

    /// Stops tracking the pod (it was stopped).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// The pod's Ready condition, given the instance of each container name
    /// that runs: every counted container runs and is ready.
    pub fn pod_ready(&self, uid: &str, running: &HashMap<String, String>) -> bool {
        let pods = self.lock();
        let Some(t) = pods.get(uid) else {
            return false;
        };
        !t.counted.is_empty()
            && t.counted
                .iter()
                .all(|name| running.get(name).is_some_and(|id| t.ready(name, id)))
    }

    /// Fills in `ContainerStatus.ready` and `Pod.ready` of a pod read from
    /// the runtime. An untracked pod's counted containers are the app
    /// containers and sidecars it shows, each ready when it runs.
    pub fn fill(&self, pod: &mut Pod) {
        let pods = self.lock();
        let tracked = pods.get(&pod.uid);
        let mut newest: HashMap<String, (u32, i64, bool)> = HashMap::new();
        for c in &mut pod.containers {
            let counted = matches!(c.kind(), ContainerKind::App | ContainerKind::Sidecar);
            c.ready = counted
                && c.state() == ContainerState::Running
                && tracked.is_none_or(|t| t.ready(&c.name, &c.id));
            if counted {
                let key = (c.restart_count, c.created_at_unix_nano, c.ready);
                let e = newest.entry(c.name.clone()).or_insert(key);
                if (key.0, key.1) > (e.0, e.1) {
                    *e = key;
                }
            }
        }
        let counted: Vec<&String> = match tracked {
            Some(t) => t.counted.iter().collect(),
            None => newest.keys().collect(),
        };
        pod.ready = pod.state() == SandboxState::Ready
            && !counted.is_empty()
            && counted
                .iter()
                .all(|name| newest.get(*name).is_some_and(|n| n.2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proto::v1::{Container, ContainerStatus, Probe};

    fn spec() -> PodSpec {
        let probed = |name: &str| Container {
            name: name.into(),
            readiness_probe: Some(Probe::default()),
            ..Default::default()
        };
        let plain = |name: &str| Container {
            name: name.into(),
            ..Default::default()
        };
        let mut proxy = probed("proxy");
        proxy.set_restart_policy(ContainerRestartPolicy::Always);
        PodSpec {
            init_containers: vec![plain("setup"), proxy],
            containers: vec![probed("web"), plain("log")],
            ..Default::default()
        }
    }

    fn status(name: &str, id: &str, kind: ContainerKind, state: ContainerState) -> ContainerStatus {
        let mut s = ContainerStatus {
            name: name.into(),
            id: id.into(),
            ..Default::default()
        };
        s.set_kind(kind);
        s.set_state(state);
        s
    }

    fn pod(containers: Vec<ContainerStatus>) -> Pod {
        let mut p = Pod {
            uid: "u".into(),
            containers,
            ..Default::default()
        };
        p.set_state(SandboxState::Ready);
        p
    }

    fn running() -> Pod {
        use ContainerKind::*;
        use ContainerState::*;
        pod(vec![
            status("setup", "s1", Init, Exited),
            status("proxy", "p1", Sidecar, Running),
            status("web", "w1", App, Running),
            status("log", "l1", App, Running),
        ])
    }

    fn ready_of(p: &Pod) -> Vec<bool> {
        p.containers.iter().map(|c| c.ready).collect()
    }

    #[test]
    fn probed_containers_wait_for_their_verdicts() {
        let r = Readiness::default();
        r.track("u", &spec());
        let mut p = running();
        r.fill(&mut p);
        assert_eq!(ready_of(&p), [false, false, false, true]);
        assert!(!p.ready);

        assert!(r.set("u", "proxy", "p1", true));
        assert!(r.set("u", "web", "w1", true));
        assert!(!r.set("u", "web", "w1", true), "no change");
        assert!(!r.set("u", "log", "l1", false), "not gated");
        let mut p = running();
        r.fill(&mut p);
        assert_eq!(ready_of(&p), [false, true, true, true]);
        assert!(p.ready);

        // A verdict is one instance's: the restarted web is not ready.
        let mut p = running();
        p.containers[2].id = "w2".into();
        p.containers[2].restart_count = 1;
        r.fill(&mut p);
        assert_eq!(ready_of(&p), [false, true, false, true]);
        assert!(!p.ready);

        r.clear("u");
        let mut p = running();
        r.fill(&mut p);
        assert_eq!(ready_of(&p), [false, false, false, true]);
    }

    #[test]
    fn the_pod_needs_every_counted_container_running() {
        let r = Readiness::default();
        r.track("u", &spec());
        r.set("u", "proxy", "p1", true);
        r.set("u", "web", "w1", true);
        let mut p = running();
        p.containers.pop(); // log not created yet
        r.fill(&mut p);
        assert!(!p.ready);
        let mut p = running();
        p.containers[3].set_state(ContainerState::Exited);
        r.fill(&mut p);
        assert!(!p.ready);
        assert!(!p.containers[3].ready);

        let mut up: HashMap<String, String> = [("proxy", "p1"), ("web", "w1"), ("log", "l1")]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i.to_string()))
            .collect();
        assert!(r.pod_ready("u", &up));
        up.insert("web".into(), "w2".into());
        assert!(!r.pod_ready("u", &up));
        up.remove("web");
        assert!(!r.pod_ready("u", &up));
        assert!(!r.pod_ready("other", &up));
    }

    #[test]
    fn an_untracked_pod_is_ready_when_its_containers_run() {
        let r = Readiness::default();
        let mut p = running();
        r.fill(&mut p);
        assert_eq!(ready_of(&p), [false, true, true, true]);
        assert!(p.ready);
        // An older exited instance does not count, the newest does.
        p.containers.push(status(
            "log",
            "l0",
            ContainerKind::App,
            ContainerState::Exited,
        ));
        r.fill(&mut p);
        assert!(p.ready);
        let mut p = running();
        p.set_state(SandboxState::NotReady);
        r.fill(&mut p);
        assert!(!p.ready);
        r.track("u", &spec());
        r.forget("u");
        let mut p = running();
        r.fill(&mut p);
        assert!(p.ready);
    }
}
