//! The sim's in-memory node: sandboxes, containers and images, the CRI state machine that moves them
//! (containerd 1.6 semantics), and the feed of container events. Every method takes the one lock,
//! changes state and releases it; nothing awaits while holding it. Exit timers of scripted
//! containers are tokio tasks that come back through `exit_on_its_own`.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;
use k8s_cri::v1::{ContainerEventType, ContainerState, NamespaceMode, PodSandboxState};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::error::CallError;
use super::lock;
use super::network::IpPool;
use super::registry::{self, IMAGE_SIZE};
use super::script::{RunPlan, Script};

/// Events kept for slow GetContainerEvents subscribers before they lag.
const EVENT_BUFFER: usize = 1024;
/// Exit code of a container killed by StopContainer (128 + SIGKILL).
const KILLED_EXIT_CODE: i32 = 137;
/// The annotation that says where a container writes its termination message (the kubelet's).
const TERMINATION_MESSAGE_PATH_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePath";
/// Exit code containerd records when StartContainer fails.
const START_ERROR_EXIT_CODE: i32 = 128;

/// The node and its event feed.
pub(crate) struct Store {
    node: Mutex<Node>,
    events: broadcast::Sender<cri::ContainerEventResponse>,
    me: Weak<Store>,
}

#[derive(Default)]
struct Node {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    /// Reserved sandbox names (`name_namespace_uid_attempt`) → sandbox id.
    sandbox_names: HashMap<String, String>,
    /// Reserved container names (`container_pod_namespace_uid_attempt`) → container id.
    container_names: HashMap<String, String>,
    /// Container ids by sandbox id, and sandbox ids by `label=value` of the
    /// pod uid and name labels: what the flow's filtered listings ask for,
    /// without a scan of the node.
    containers_by_sandbox: HashMap<String, HashSet<String>>,
    sandboxes_by_label: HashMap<String, HashSet<String>>,
    /// Images by id.
    images: HashMap<String, ImageRecord>,
    ips: IpPool,
    /// Creation order, for stable listings.
    seq: u64,
    /// How often each `fail-first` or `exit-codes` command ran, by (sandbox id, container name, command).
    exec_counts: HashMap<(String, String, Vec<String>), u32>,
    /// Pod uids that once had two ready sandboxes, or two running containers of one name, at once.
    duplicated: HashSet<String>,
}

struct Sandbox {
    id: String,
    seq: u64,
    config: cri::PodSandboxConfig,
    runtime_handler: String,
    name: String,
    state: PodSandboxState,
    created_at: i64,
    ip: Option<Ipv4Addr>,
}

struct Container {
    id: String,
    seq: u64,
    sandbox_id: String,
    name: String,
    config: cri::ContainerConfig,
    image_id: String,
    image_name: String,
    log_path: String,
    script: Script,
    created_at: i64,
    phase: Phase,
    exit_timer: Option<AbortHandle>,
}

/// A container's lifecycle; only these transitions exist:
/// Created → Running → Exited, and Created → Exited (start error).
enum Phase {
    Created,
    Running { started_at: i64 },
    Exited(Exit),
}

struct Exit {
    started_at: i64,
    finished_at: i64,
    code: i32,
    reason: ExitReason,
    message: String,
}

#[derive(Clone, Copy)]
enum ExitReason {
    Completed,
    Error,
    StartError,
}

struct ImageRecord {
    id: String,
    repo_tags: Vec<String>,
}

impl Store {
    /// An empty node holding the given (already normalised) images.
    pub(crate) fn new(images: impl IntoIterator<Item = String>) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let store = Arc::new_cyclic(|me| Store {
            node: Mutex::new(Node::default()),
            events,
            me: me.clone(),
        });
        for name in images {
            store.add_image(name);
        }
        store
    }

    fn node(&self) -> MutexGuard<'_, Node> {
        lock(&self.node)
    }

    /// A receiver of every container event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.events.subscribe()
    }

    pub(crate) fn sandbox_count(&self) -> usize {
        self.node().sandboxes.len()
    }

    pub(crate) fn container_count(&self) -> usize {
        self.node().containers.len()
    }

    pub(crate) fn duplicated_pods(&self) -> Vec<String> {
        let mut uids: Vec<String> = self.node().duplicated.iter().cloned().collect();
        uids.sort();
        uids
    }

    // ---- sandboxes ----

    /// RunPodSandbox: reserves the name, leases an IP unless the pod uses the host network.
    pub(crate) fn run_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: String,
    ) -> Result<String, CallError> {
        let meta = config
            .metadata
            .as_ref()
            .ok_or(CallError::MissingSandboxMetadata)?;
        let name = format!(
            "{}_{}_{}_{}",
            meta.name, meta.namespace, meta.uid, meta.attempt
        );
        let mut node = self.node();
        if let Some(holder) = node.sandbox_names.get(&name) {
            return Err(CallError::SandboxNameReserved {
                name,
                holder: holder.clone(),
            });
        }
        let meta_uid = meta.uid.clone();
        let id = new_id();
        let ip = if host_network(&config) {
            None
        } else {
            Some(node.ips.lease().ok_or_else(|| CallError::NoPodIp {
                sandbox: id.clone(),
            })?)
        };
        node.seq += 1;
        let sandbox = Sandbox {
            id: id.clone(),
            seq: node.seq,
            config,
            runtime_handler,
            name: name.clone(),
            state: PodSandboxState::SandboxReady,
            created_at: now_nanos(),
            ip,
        };
        node.sandbox_names.insert(name, id.clone());
        for key in indexed_labels(&sandbox.config.labels) {
            node.sandboxes_by_label
                .entry(key)
                .or_default()
                .insert(id.clone());
        }
        node.sandboxes.insert(id.clone(), sandbox);
        if node.ready_sandboxes_of(&meta_uid) > 1 {
            node.duplicated.insert(meta_uid);
        }
        Ok(id)
    }

    /// StopPodSandbox: kills its running containers and marks it NOTREADY. Keeps the name and IP.
    pub(crate) fn stop_sandbox(&self, id: &str) -> Result<(), CallError> {
        let mut node = self.node();
        let sandbox = node
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| CallError::SandboxNotFound { id: id.to_owned() })?;
        sandbox.state = PodSandboxState::SandboxNotready;
        for container_id in node.container_ids_in(id) {
            self.kill(&mut node, &container_id);
        }
        Ok(())
    }

    /// RemovePodSandbox: kills and removes its containers, frees name and IP. Unknown ids are fine.
    pub(crate) fn remove_sandbox(&self, id: &str) {
        let mut node = self.node();
        if !node.sandboxes.contains_key(id) {
            return;
        }
        for container_id in node.container_ids_in(id) {
            self.remove_locked(&mut node, &container_id);
        }
        if let Some(sandbox) = node.sandboxes.remove(id) {
            node.sandbox_names.remove(&sandbox.name);
            for key in indexed_labels(&sandbox.config.labels) {
                unindex(&mut node.sandboxes_by_label, &key, id);
            }
            if let Some(ip) = sandbox.ip {
                node.ips.release(ip);
            }
        }
    }

    pub(crate) fn sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CallError> {
        self.node()
            .sandboxes
            .get(id)
            .map(Sandbox::status)
            .ok_or_else(|| CallError::SandboxNotFound { id: id.to_owned() })
    }

    pub(crate) fn list_sandboxes(
        &self,
        filter: Option<&cri::PodSandboxFilter>,
    ) -> Vec<cri::PodSandbox> {
        let node = self.node();
        let mut found: Vec<&Sandbox> = node
            .sandbox_candidates(filter)
            .filter(|s| filter.is_none_or(|f| s.matches(f)))
            .collect();
        found.sort_by_key(|s| s.seq);
        found.into_iter().map(Sandbox::summary).collect()
    }

    // ---- containers ----

    /// CreateContainer, in containerd's order of checks: sandbox, metadata, name, image; then the
    /// sim's own script.
    pub(crate) fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
    ) -> Result<String, CallError> {
        let mut node = self.node();
        let sandbox =
            node.sandboxes
                .get(sandbox_id)
                .ok_or_else(|| CallError::ContainerSandboxNotFound {
                    id: sandbox_id.to_owned(),
                })?;
        let meta = config
            .metadata
            .as_ref()
            .ok_or(CallError::MissingContainerMetadata)?;
        let pod = sandbox.config.metadata.clone().unwrap_or_default();
        let name = format!(
            "{}_{}_{}_{}_{}",
            meta.name, pod.name, pod.namespace, pod.uid, meta.attempt
        );
        if let Some(holder) = node.container_names.get(&name) {
            return Err(CallError::ContainerNameReserved {
                name,
                holder: holder.clone(),
            });
        }
        let wanted = config
            .image
            .as_ref()
            .map(|spec| spec.image.as_str())
            .unwrap_or_default();
        let image = node
            .find_image(wanted)
            .ok_or_else(|| CallError::ImageNotFound {
                image: wanted.to_owned(),
            })?;
        let (image_id, image_name) = (
            image.id.clone(),
            image
                .repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| wanted.to_owned()),
        );
        let script = Script::from_env(&config.envs, meta.attempt)?;
        let log_path = join_log_path(&sandbox.config.log_directory, &config.log_path);
        let id = new_id();
        node.seq += 1;
        let container = Container {
            id: id.clone(),
            seq: node.seq,
            sandbox_id: sandbox_id.to_owned(),
            name: name.clone(),
            config,
            image_id,
            image_name,
            log_path,
            script,
            created_at: now_nanos(),
            phase: Phase::Created,
            exit_timer: None,
        };
        node.container_names.insert(name, id.clone());
        node.containers_by_sandbox
            .entry(sandbox_id.to_owned())
            .or_default()
            .insert(id.clone());
        node.containers.insert(id.clone(), container);
        self.emit(
            &node,
            &id,
            sandbox_id,
            ContainerEventType::ContainerCreatedEvent,
        );
        Ok(id)
    }

    /// StartContainer: CREATED → RUNNING, or → EXITED 128 `StartError` when the sandbox is stopped
    /// or the script says so. A scripted exit is armed as a tokio timer.
    pub(crate) fn start_container(&self, id: &str) -> Result<(), CallError> {
        let mut node = self.node();
        let node = &mut *node;
        let container = node
            .containers
            .get_mut(id)
            .ok_or_else(|| CallError::ContainerNotFound { id: id.to_owned() })?;
        if !matches!(container.phase, Phase::Created) {
            return Err(CallError::NotStartable {
                id: id.to_owned(),
                state: container.phase.state().as_str_name(),
            });
        }
        let sandbox_id = container.sandbox_id.clone();
        let sandbox_ready = node
            .sandboxes
            .get(&sandbox_id)
            .is_some_and(|s| s.state == PodSandboxState::SandboxReady);
        let failure = if !sandbox_ready {
            Some(CallError::SandboxNotRunning {
                sandbox: sandbox_id.clone(),
            })
        } else {
            container
                .script
                .start_error
                .clone()
                .map(|message| CallError::StartFailed { message })
        };
        let now = now_nanos();
        if let Some(err) = failure {
            container.phase = Phase::Exited(Exit {
                started_at: 0,
                finished_at: now,
                code: START_ERROR_EXIT_CODE,
                reason: ExitReason::StartError,
                message: err.to_string(),
            });
            self.emit(
                node,
                id,
                &sandbox_id,
                ContainerEventType::ContainerStoppedEvent,
            );
            return Err(err);
        }
        container.phase = Phase::Running { started_at: now };
        write_log(&container.log_path, &container.script.log_lines);
        if let RunPlan::ExitAfter { run_for, exit_code } = container.script.run {
            container.exit_timer = Some(self.arm_exit(id.to_owned(), run_for, exit_code));
        }
        let name = container.config.metadata.as_ref().map(|m| m.name.clone());
        let uid = node
            .sandboxes
            .get(&sandbox_id)
            .and_then(|s| s.config.metadata.as_ref())
            .map(|m| m.uid.clone());
        if let (Some(name), Some(uid)) = (name, uid)
            && node.running_containers_of(&uid, &name) > 1
        {
            node.duplicated.insert(uid);
        }
        self.emit(
            node,
            id,
            &sandbox_id,
            ContainerEventType::ContainerStartedEvent,
        );
        Ok(())
    }

    /// StopContainer: a RUNNING container is killed (137, `Error`); others are left as they are.
    pub(crate) fn stop_container(&self, id: &str) -> Result<(), CallError> {
        let mut node = self.node();
        if !node.containers.contains_key(id) {
            return Err(CallError::ContainerNotFound { id: id.to_owned() });
        }
        self.kill(&mut node, id);
        Ok(())
    }

    /// RemoveContainer: kills it if running, then forgets it and frees its name. Unknown ids are fine.
    pub(crate) fn remove_container(&self, id: &str) {
        let mut node = self.node();
        self.remove_locked(&mut node, id);
    }

    pub(crate) fn container_config(&self, id: &str) -> Option<cri::ContainerConfig> {
        self.node().containers.get(id).map(|c| c.config.clone())
    }

    pub(crate) fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CallError> {
        self.node()
            .containers
            .get(id)
            .map(Container::status)
            .ok_or_else(|| CallError::ContainerNotFound { id: id.to_owned() })
    }

    pub(crate) fn list_containers(
        &self,
        filter: Option<&cri::ContainerFilter>,
    ) -> Vec<cri::Container> {
        let node = self.node();
        let mut found: Vec<&Container> = node
            .container_candidates(filter)
            .filter(|c| filter.is_none_or(|f| c.matches(f)))
            .collect();
        found.sort_by_key(|c| c.seq);
        found.into_iter().map(Container::summary).collect()
    }

    /// How many times `cmd` ran before in this sandbox's containers of this one's name; counts
    /// this run.
    pub(crate) fn count_exec(&self, id: &str, cmd: &[String]) -> u32 {
        let mut node = self.node();
        let Some(c) = node.containers.get(id) else {
            return 0;
        };
        let name = c
            .config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let key = (c.sandbox_id.clone(), name, cmd.to_vec());
        let count = node.exec_counts.entry(key).or_default();
        *count += 1;
        *count - 1
    }

    /// ExecSync precondition: the container exists and is RUNNING.
    pub(crate) fn check_exec(&self, id: &str) -> Result<(), CallError> {
        let node = self.node();
        let container = node
            .containers
            .get(id)
            .ok_or_else(|| CallError::ContainerNotFound { id: id.to_owned() })?;
        match container.phase {
            Phase::Running { .. } => Ok(()),
            Phase::Created | Phase::Exited(_) => Err(CallError::ExecNotRunning {
                state: container.phase.state().as_str_name(),
            }),
        }
    }

    fn arm_exit(&self, id: String, after: Duration, exit_code: i32) -> AbortHandle {
        let store = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(store) = store.upgrade() {
                store.exit_on_its_own(&id, exit_code);
            }
        })
        .abort_handle()
    }

    /// A scripted container's process ends (writing its termination message first). Ignored
    /// unless it is still RUNNING.
    fn exit_on_its_own(&self, id: &str, code: i32) {
        let mut node = self.node();
        if let Some(c) = node.containers.get(id)
            && matches!(c.phase, Phase::Running { .. })
            && let Some(text) = &c.script.termination_message
            && let Some(path) = c
                .config
                .annotations
                .get(TERMINATION_MESSAGE_PATH_ANNOTATION)
            && let Some(mount) = c.config.mounts.iter().find(|m| &m.container_path == path)
            && let Err(err) = std::fs::write(&mount.host_path, text)
        {
            tracing::warn!(path = %mount.host_path, error = %err, "writing a termination message");
        }
        let reason = if code == 0 {
            ExitReason::Completed
        } else {
            ExitReason::Error
        };
        self.finish(&mut node, id, code, reason);
    }

    fn kill(&self, node: &mut Node, id: &str) {
        self.finish(node, id, KILLED_EXIT_CODE, ExitReason::Error);
    }

    /// RUNNING → EXITED with the given code; emits STOPPED. No-op in any other phase.
    fn finish(&self, node: &mut Node, id: &str, code: i32, reason: ExitReason) {
        let Some(container) = node.containers.get_mut(id) else {
            return;
        };
        let Phase::Running { started_at } = container.phase else {
            return;
        };
        if let Some(timer) = container.exit_timer.take() {
            timer.abort();
        }
        container.phase = Phase::Exited(Exit {
            started_at,
            finished_at: now_nanos(),
            code,
            reason,
            message: String::new(),
        });
        let sandbox_id = container.sandbox_id.clone();
        self.emit(
            node,
            id,
            &sandbox_id,
            ContainerEventType::ContainerStoppedEvent,
        );
    }

    fn remove_locked(&self, node: &mut Node, id: &str) {
        self.kill(node, id);
        let Some(mut container) = node.containers.remove(id) else {
            return;
        };
        if let Some(timer) = container.exit_timer.take() {
            timer.abort();
        }
        node.container_names.remove(&container.name);
        unindex(&mut node.containers_by_sandbox, &container.sandbox_id, id);
        self.emit(
            node,
            id,
            &container.sandbox_id,
            ContainerEventType::ContainerDeletedEvent,
        );
    }

    /// Publishes a container event carrying the sandbox's status and all its containers' statuses.
    fn emit(&self, node: &Node, container_id: &str, sandbox_id: &str, kind: ContainerEventType) {
        let event = cri::ContainerEventResponse {
            container_id: container_id.to_owned(),
            container_event_type: kind as i32,
            created_at: now_nanos(),
            pod_sandbox_status: node.sandboxes.get(sandbox_id).map(Sandbox::status),
            containers_statuses: node
                .container_ids_in(sandbox_id)
                .iter()
                .filter_map(|id| node.containers.get(id))
                .map(Container::status)
                .collect(),
        };
        // Sending fails only when nobody subscribes, which is the normal case.
        let _ = self.events.send(event);
    }

    // ---- images ----

    /// Records a pulled (or preloaded) image under its normalised name; returns its id.
    pub(crate) fn add_image(&self, normalised: String) -> String {
        let id = registry::image_id(&normalised);
        self.node()
            .images
            .entry(id.clone())
            .or_insert_with(|| ImageRecord {
                id: id.clone(),
                repo_tags: vec![normalised],
            });
        id
    }

    /// ImageStatus: the image a name or id refers to, if present.
    pub(crate) fn image(&self, reference: &str) -> Option<cri::Image> {
        self.node().find_image(reference).map(ImageRecord::to_cri)
    }

    /// ListImages, optionally only the image a filter reference resolves to.
    pub(crate) fn images(&self, reference: Option<&str>) -> Vec<cri::Image> {
        let node = self.node();
        match reference {
            Some(reference) => node
                .find_image(reference)
                .map(ImageRecord::to_cri)
                .into_iter()
                .collect(),
            None => {
                let mut all: Vec<cri::Image> =
                    node.images.values().map(ImageRecord::to_cri).collect();
                all.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags));
                all
            }
        }
    }

    /// RemoveImage by name or id; absent images are fine.
    pub(crate) fn remove_image(&self, reference: &str) {
        let mut node = self.node();
        if let Some(id) = node.find_image(reference).map(|image| image.id.clone()) {
            node.images.remove(&id);
        }
    }
}

impl Node {
    /// Sandboxes labelled with pod `uid` that are ready.
    fn ready_sandboxes_of(&self, uid: &str) -> usize {
        self.sandbox_ids_of(uid)
            .filter(|id| {
                self.sandboxes
                    .get(*id)
                    .is_some_and(|s| s.state == PodSandboxState::SandboxReady)
            })
            .count()
    }

    /// Running containers named `name` in the sandboxes of pod `uid`.
    fn running_containers_of(&self, uid: &str, name: &str) -> usize {
        self.sandbox_ids_of(uid)
            .filter_map(|sandbox| self.containers_by_sandbox.get(sandbox))
            .flatten()
            .filter_map(|id| self.containers.get(id))
            .filter(|c| {
                matches!(c.phase, Phase::Running { .. })
                    && c.config.metadata.as_ref().is_some_and(|m| m.name == name)
            })
            .count()
    }

    fn sandbox_ids_of<'a>(&'a self, uid: &str) -> impl Iterator<Item = &'a String> + 'a {
        self.sandboxes_by_label
            .get(&format!("{}={uid}", INDEXED_LABELS[0]))
            .into_iter()
            .flatten()
    }

    fn container_ids_in(&self, sandbox_id: &str) -> Vec<String> {
        self.containers_by_sandbox
            .get(sandbox_id)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The containers a filter can match: one sandbox's when it names a
    /// whole sandbox id, else all.
    fn container_candidates<'a>(
        &'a self,
        filter: Option<&cri::ContainerFilter>,
    ) -> Box<dyn Iterator<Item = &'a Container> + 'a> {
        match filter.and_then(|f| self.containers_by_sandbox.get(&f.pod_sandbox_id)) {
            Some(ids) => Box::new(ids.iter().filter_map(|id| self.containers.get(id))),
            None if filter.is_some_and(|f| {
                !f.pod_sandbox_id.is_empty() && self.sandboxes.contains_key(&f.pod_sandbox_id)
            }) =>
            {
                Box::new(std::iter::empty())
            }
            None => Box::new(self.containers.values()),
        }
    }

    /// The sandboxes a filter can match: those with its pod uid or name
    /// label when it selects one, else all.
    fn sandbox_candidates<'a>(
        &'a self,
        filter: Option<&cri::PodSandboxFilter>,
    ) -> Box<dyn Iterator<Item = &'a Sandbox> + 'a> {
        match filter.and_then(|f| indexed_labels(&f.label_selector).next()) {
            Some(key) => Box::new(
                self.sandboxes_by_label
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.sandboxes.get(id)),
            ),
            None => Box::new(self.sandboxes.values()),
        }
    }

    /// Resolves an image id (`sha256:…` or bare hex) or a name (normalised first).
    fn find_image(&self, reference: &str) -> Option<&ImageRecord> {
        if reference.is_empty() {
            return None;
        }
        self.images
            .get(reference)
            .or_else(|| self.images.get(&format!("sha256:{reference}")))
            .or_else(|| {
                let name = registry::normalise(reference).ok()?;
                self.images.get(&registry::image_id(&name))
            })
    }
}

impl Sandbox {
    fn status(&self) -> cri::PodSandboxStatus {
        let namespace_options = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        cri::PodSandboxStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: self.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: namespace_options,
                }),
            }),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    fn summary(&self) -> cri::PodSandbox {
        cri::PodSandbox {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    fn matches(&self, filter: &cri::PodSandboxFilter) -> bool {
        self.id.starts_with(&filter.id)
            && filter
                .state
                .as_ref()
                .is_none_or(|wanted| wanted.state == self.state as i32)
            && labels_match(&self.config.labels, &filter.label_selector)
    }
}

impl Container {
    fn status(&self) -> cri::ContainerStatus {
        let (started_at, finished_at, exit_code, reason, message) = match &self.phase {
            Phase::Created => (0, 0, 0, "", ""),
            Phase::Running { started_at } => (*started_at, 0, 0, "", ""),
            Phase::Exited(exit) => (
                exit.started_at,
                exit.finished_at,
                exit.code,
                exit.reason.as_str(),
                exit.message.as_str(),
            ),
        };
        let image = cri::ImageSpec {
            image: self.image_name.clone(),
            ..self.config.image.clone().unwrap_or_default()
        };
        cri::ContainerStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.phase.state() as i32,
            created_at: self.created_at,
            started_at,
            finished_at,
            exit_code,
            image: Some(image),
            image_ref: self.image_id.clone(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            mounts: self.config.mounts.clone(),
            log_path: self.log_path.clone(),
            resources: None,
            image_id: self.image_id.clone(),
            user: None,
        }
    }

    fn summary(&self) -> cri::Container {
        cri::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: self.config.metadata.clone(),
            image: self.config.image.clone(),
            image_ref: self.image_id.clone(),
            state: self.phase.state() as i32,
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            image_id: self.image_id.clone(),
        }
    }

    fn matches(&self, filter: &cri::ContainerFilter) -> bool {
        self.id.starts_with(&filter.id)
            && self.sandbox_id.starts_with(&filter.pod_sandbox_id)
            && filter
                .state
                .as_ref()
                .is_none_or(|wanted| wanted.state == self.phase.state() as i32)
            && labels_match(&self.config.labels, &filter.label_selector)
    }
}

impl Phase {
    fn state(&self) -> ContainerState {
        match self {
            Phase::Created => ContainerState::ContainerCreated,
            Phase::Running { .. } => ContainerState::ContainerRunning,
            Phase::Exited(_) => ContainerState::ContainerExited,
        }
    }
}

impl ExitReason {
    fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::StartError => "StartError",
        }
    }
}

impl ImageRecord {
    fn to_cri(&self) -> cri::Image {
        cri::Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            size: IMAGE_SIZE,
            ..cri::Image::default()
        }
    }
}

fn host_network(config: &cri::PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|ns| ns.network == NamespaceMode::Node as i32)
}

/// The kubelet's pod labels the flow's sandbox listings select on.
const INDEXED_LABELS: [&str; 2] = ["io.kubernetes.pod.uid", "io.kubernetes.pod.name"];

/// `label=value` of each indexed label present.
fn indexed_labels(labels: &HashMap<String, String>) -> impl Iterator<Item = String> + '_ {
    INDEXED_LABELS
        .iter()
        .filter_map(move |k| labels.get(*k).map(|v| format!("{k}={v}")))
}

fn unindex(index: &mut HashMap<String, HashSet<String>>, key: &str, id: &str) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// containerd's `filepath.Join(log_directory, log_path)`, without touching the filesystem.
fn join_log_path(directory: &str, path: &str) -> String {
    match (directory, path) {
        (_, "") => String::new(),
        ("", path) => path.to_owned(),
        (directory, path) => format!(
            "{}/{}",
            directory.trim_end_matches('/'),
            path.trim_start_matches('/')
        ),
    }
}

/// Appends `lines` to a CRI log file (`<RFC3339Nano> stdout F <text>`), creating its directory as
/// containerd does. A container without a log path or lines writes nothing.
fn write_log(path: &str, lines: &[String]) {
    use std::io::Write;
    if path.is_empty() || lines.is_empty() {
        return;
    }
    let path = std::path::Path::new(path);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let now = humantime::format_rfc3339_nanos(SystemTime::now());
            for line in lines {
                writeln!(file, "{now} stdout F {line}")?;
            }
            Ok(())
        });
    if let Err(err) = written {
        tracing::warn!(path = %path.display(), error = %err, "writing a container log");
    }
}

/// A random 64-hex id, like containerd's.
fn new_id() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
