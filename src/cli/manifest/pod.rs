//! The pod itself: the Pod document, its metadata (and the uid of a pod
//! that sets none), the pod-level fields of its spec (namespaces, DNS,
//! restart policy, grace period, resources, service account, AppArmor
//! annotations), and the fields ignored there with a warning.

use std::collections::HashMap;

use crate::cli::yaml::Value;

use super::container::ContainerList;
use super::fields::Fields;
use super::resources::resources;
use super::{Converter, Manifest};
use crate::proto::v1::{
    AppArmorProfile, DnsConfig, PodMetadata, PodSpec, RestartPolicy, StartPodRequest,
    app_armor_profile,
};

pub(super) const SCHEDULING: &str = "scheduling field; ignored by podstart";
pub(super) const API_SERVER: &str = "API server field; ignored by podstart";

pub(super) const POD_IGNORED: &[(&str, &str)] = &[("status", "written by the API server; ignored")];

pub(super) const METADATA_IGNORED: &[(&str, &str)] = &[
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

pub(super) const SPEC_IGNORED: &[(&str, &str)] = &[
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
        "podstart evaluates no readiness gates (the pod is Ready when its containers are); ignored",
    ),
    (
        "enableServiceLinks",
        "podstart injects no service environment variables; ignored",
    ),
];

pub(super) const RESTART_POLICIES: &[(&str, RestartPolicy)] = &[
    ("Always", RestartPolicy::Always),
    ("OnFailure", RestartPolicy::OnFailure),
    ("Never", RestartPolicy::Never),
];

/// The annotation Kubernetes read AppArmor profiles from before the
/// `appArmorProfile` field: `<prefix><container name>`.
pub(super) const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The namespace of the name-based (version 5) uids given to pods whose
/// manifest has no metadata.uid.
const UID_NAMESPACE: uuid::Uuid = uuid::uuid!("5b0c4e8e-2f7a-4d36-9a51-7c1e3d9f0a42");

/// The uid of a pod whose manifest sets none: a version 5 UUID of
/// `namespace/name`, so the same manifest names the same pod at every run
/// (a second `run` finds it running; `get` and `stop` find it).
pub(super) fn stable_uid(namespace: &str, name: &str) -> String {
    let mut input = UID_NAMESPACE.as_bytes().to_vec();
    input.extend_from_slice(format!("{namespace}/{name}").as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Converter {
    pub(super) fn pod(&mut self, document: Value) -> Manifest {
        let Some(mut pod) = Fields::new(document, String::new(), &self.errors) else {
            return Manifest {
                request: StartPodRequest::default(),
                warnings: Vec::new(),
            };
        };
        pod.take("kind");
        match pod.string("apiVersion") {
            Some(version) if version == "v1" => {}
            other => pod.error(
                "apiVersion",
                format!(
                    "expected \"v1\" for kind Pod, found {}",
                    other.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
                ),
            ),
        }
        pod.ignore(POD_IGNORED, &mut self.warnings);
        let metadata = pod
            .fields("metadata")
            .unwrap_or_else(|| Fields::empty("metadata", &self.errors));
        let metadata = self.metadata(metadata);
        let spec = pod
            .fields("spec")
            .unwrap_or_else(|| Fields::empty("spec", &self.errors));
        let spec = self.spec(spec, metadata);
        pod.finish();
        Manifest {
            request: StartPodRequest {
                pod: Some(spec),
                ..Default::default()
            },
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    pub(super) fn metadata(&mut self, mut m: Fields) -> PodMetadata {
        m.ignore(METADATA_IGNORED, &mut self.warnings);
        let name = m.string("name").unwrap_or_default();
        let namespace = m
            .string("namespace")
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let uid = m
            .string("uid")
            .filter(|uid| !uid.is_empty())
            .unwrap_or_else(|| stable_uid(&namespace, &name));
        self.namespace.clone_from(&namespace);
        let metadata = PodMetadata {
            name,
            namespace,
            uid,
            attempt: 0,
            labels: m.string_map("labels"),
            annotations: m.string_map("annotations"),
        };
        m.finish();
        metadata
    }

    pub(super) fn spec(&mut self, mut s: Fields, metadata: PodMetadata) -> PodSpec {
        // `false` asks for what podstart does anyway: nothing to warn about.
        match s.take("enableServiceLinks") {
            None | Some(Value::Bool(false)) => {}
            Some(other) => s.put_back("enableServiceLinks", other),
        }
        s.ignore(SPEC_IGNORED, &mut self.warnings);
        self.metadata = Some(metadata.clone());
        self.service_account(&mut s);
        // serviceAccount is the deprecated spelling; the newer one wins.
        let name = s
            .string("serviceAccountName")
            .filter(|name| !name.is_empty());
        let deprecated = s.string("serviceAccount");
        let service_account_name = name.or(deprecated).unwrap_or_default();
        let secrets_path = s.path_of("imagePullSecrets");
        for (i, mut reference) in s.list_of_fields("imagePullSecrets").into_iter().enumerate() {
            if let Some(name) = reference.string("name") {
                self.pull_secrets
                    .push((format!("{secrets_path}[{i}]"), name));
            }
            reference.finish();
        }
        let volumes = s
            .list_of_fields("volumes")
            .into_iter()
            .filter_map(|volume| self.volume(volume))
            .collect();
        if let Some(policy) = s.string("dnsPolicy")
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
        let runtime_handler = s.string("runtimeClassName").unwrap_or_default();
        if !runtime_handler.is_empty() {
            self.warn(
                s.path_of("runtimeClassName"),
                "used as the CRI runtime handler as-is (no RuntimeClass lookup)",
            );
        }
        let (security_context, sysctls) = match s.fields("securityContext") {
            Some(context) => self.pod_security_context(context),
            None => (None, HashMap::new()),
        };
        let mut spec = PodSpec {
            hostname: s.string("hostname").unwrap_or_default(),
            subdomain: s.string("subdomain").unwrap_or_default(),
            dns_config: s.fields("dnsConfig").map(dns_config),
            host_network: s.bool("hostNetwork").unwrap_or(false),
            host_pid: s.bool("hostPID").unwrap_or(false),
            host_ipc: s.bool("hostIPC").unwrap_or(false),
            runtime_handler,
            cgroup_parent: String::new(),
            sysctls,
            security_context,
            restart_policy: s.enumeration("restartPolicy", RESTART_POLICIES),
            termination_grace_period_seconds: s.int("terminationGracePeriodSeconds"),
            resources: s.fields("resources").and_then(resources),
            service_account_name,
            volumes,
            ..Default::default()
        };
        spec.init_containers = self.containers(&mut s, "initContainers", ContainerList::Init);
        spec.containers = self.containers(&mut s, "containers", ContainerList::App);
        spec.ephemeral_containers =
            self.containers(&mut s, "ephemeralContainers", ContainerList::Ephemeral);
        s.finish();
        self.apparmor_annotations(&metadata, &mut spec);
        spec.metadata = Some(metadata);
        spec
    }

    /// serviceAccountName is kept for the downward API; the token Kubernetes
    /// would mount is not, which is worth a warning unless the manifest
    /// turned it off.
    fn service_account(&mut self, s: &mut Fields) {
        let automount = s.bool("automountServiceAccountToken");
        let named = ["serviceAccountName", "serviceAccount"]
            .into_iter()
            .find(|key| s.has(key));
        if automount != Some(false)
            && let Some(key) = named
        {
            self.warn(
                s.path_of(key),
                "podstart mounts no service account token (set automountServiceAccountToken: \
                 false to say so)",
            );
        }
    }

    /// The AppArmor annotations of `metadata`, each on the container it
    /// names unless that container's own security context sets a profile.
    fn apparmor_annotations(&mut self, metadata: &PodMetadata, spec: &mut PodSpec) {
        let mut annotations: Vec<(&String, &String)> = metadata
            .annotations
            .iter()
            .filter(|(key, _)| key.starts_with(APPARMOR_ANNOTATION))
            .collect();
        annotations.sort();
        for (key, value) in annotations {
            let path = format!("metadata.annotations[{key}]");
            let name = &key[APPARMOR_ANNOTATION.len()..];
            let Some(profile) = apparmor_annotation(value) else {
                self.error(
                    path,
                    format!(
                        "expected runtime/default, localhost/<profile> or unconfined, found \
                         {value:?}"
                    ),
                );
                continue;
            };
            let container = spec
                .init_containers
                .iter_mut()
                .chain(spec.containers.iter_mut())
                .chain(spec.ephemeral_containers.iter_mut())
                .find(|c| c.name == name);
            let Some(container) = container else {
                self.warn(path, format!("no container {name:?} in the pod; ignored"));
                continue;
            };
            let context = container
                .security_context
                .get_or_insert_with(Default::default);
            if context.apparmor_profile.is_none() {
                context.apparmor_profile = Some(profile);
            }
        }
    }
}

/// An AppArmor annotation's value as a profile.
pub(super) fn apparmor_annotation(value: &str) -> Option<AppArmorProfile> {
    let (kind, localhost_profile) = match value {
        "runtime/default" => (app_armor_profile::Type::RuntimeDefault, ""),
        "unconfined" => (app_armor_profile::Type::Unconfined, ""),
        _ => (
            app_armor_profile::Type::Localhost,
            value.strip_prefix("localhost/").filter(|p| !p.is_empty())?,
        ),
    };
    Some(AppArmorProfile {
        r#type: kind.into(),
        localhost_profile: localhost_profile.to_owned(),
    })
}

pub(super) fn dns_config(mut d: Fields) -> DnsConfig {
    let mut options = Vec::new();
    for mut option in d.list_of_fields("options") {
        let name = option.string("name").unwrap_or_default();
        let value = option.string("value");
        option.finish();
        options.push(match value {
            Some(value) => format!("{name}:{value}"),
            None => name,
        });
    }
    let config = DnsConfig {
        servers: d.strings("nameservers"),
        searches: d.strings("searches"),
        options,
    };
    d.finish();
    config
}

#[cfg(test)]
mod tests {
    use super::super::parse_manifest;
    use super::super::test_support::*;

    #[test]
    fn pod_and_metadata_errors_name_the_field_path() {
        // (manifest, path, start of the rule)
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
        ];
        assert_field_errors(cases);
    }

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{restartPolicy: Sometimes, containers: [{name: a}]}",
                "spec.restartPolicy",
                "expected one of Always, OnFailure, Never, found \"Sometimes\"",
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
        ];
        assert_spec_field_errors(cases);
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
  enableServiceLinks: true
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
            "spec.readinessGates: podstart evaluates no readiness gates (the pod is Ready when its containers are); ignored",
            "spec.enableServiceLinks: podstart injects no service environment variables; ignored",
            "spec.dnsPolicy: \"ClusterFirst\" is not resolved by podstart: the sandbox gets spec.dnsConfig only (none: the runtime's default resolv.conf)",
            "spec.runtimeClassName: used as the CRI runtime handler as-is (no RuntimeClass lookup)",
            "spec.containers[0].resizePolicy: podstart does not resize containers in place; ignored",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: passed to the runtime as-is (Kubernetes would resolve it under the kubelet's seccomp directory)",
            "spec.imagePullSecrets[0]: Secret \"pull\" is not in the manifest; ignored",
        ];
        assert_eq!(manifest.warnings, want);
        let spec = pod_spec(&manifest);
        assert_eq!(spec.runtime_handler, "gvisor");
        assert_eq!(spec.service_account_name, "web");
        assert_eq!(spec.containers[0].startup_probe, None);
        assert_eq!(
            spec.containers[0].readiness_probe,
            Some(Probe {
                handler: Some(Handler {
                    action: Some(handler::Action::TcpSocket(TcpSocketAction {
                        host: String::new(),
                        port: "80".into(),
                    })),
                }),
                initial_delay_seconds: 0,
                period_seconds: 10,
                timeout_seconds: 1,
                success_threshold: 1,
                failure_threshold: 3,
            })
        );
        assert!(spec.containers[0].liveness_probe.is_some());
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
    fn service_links_turned_off_is_what_podstart_does_and_says_nothing() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n\
                    spec: {enableServiceLinks: false, containers: [{name: a, image: i}]}\n";
        let manifest = parse_manifest(text).expect("converts");
        assert_eq!(manifest.warnings, Vec::<String>::new());
        let on = text.replace("false", "true");
        let manifest = parse_manifest(&on).expect("converts");
        assert_eq!(
            manifest.warnings,
            ["spec.enableServiceLinks: podstart injects no service environment variables; ignored"]
        );
    }

    #[test]
    fn missing_uid_is_stable_for_one_namespace_and_name() {
        let uid = |text: &str| {
            let manifest = parse_manifest(text).expect("converts");
            let metadata = pod_spec(&manifest).metadata.clone().expect("metadata");
            uuid::Uuid::parse_str(&metadata.uid).expect("a UUID")
        };
        let text = pod_yaml("{containers: [{name: a, image: i}]}");
        let first = uid(&text);
        assert_eq!(first.get_version(), Some(uuid::Version::Sha1));
        assert_eq!(first, uid(&text), "the same manifest, the same pod");
        let explicit = text.replace("name: p}", "name: p, namespace: default}");
        assert_eq!(first, uid(&explicit), "namespace defaults to default");
        assert_ne!(first, uid(&text.replace("name: p}", "name: q}")));
        assert_ne!(
            first,
            uid(&text.replace("name: p}", "name: p, namespace: x}"))
        );
        let given = text.replace(
            "name: p}",
            "name: p, uid: 11111111-2222-4333-8444-555555555555}",
        );
        assert_eq!(
            uid(&given).to_string(),
            "11111111-2222-4333-8444-555555555555"
        );
    }

    #[test]
    fn service_account_token_warning_unless_turned_off() {
        let warnings = |spec: &str| parse_manifest(&pod_yaml(spec)).expect("converts").warnings;
        assert_eq!(
            warnings("{serviceAccountName: web, containers: [{name: a, image: i}]}"),
            [
                "spec.serviceAccountName: podstart mounts no service account token (set \
              automountServiceAccountToken: false to say so)"
            ]
        );
        assert_eq!(
            warnings(
                "{serviceAccount: web, automountServiceAccountToken: true, containers: [{name: a, image: i}]}"
            ),
            [
                "spec.serviceAccount: podstart mounts no service account token (set \
              automountServiceAccountToken: false to say so)"
            ]
        );
        assert!(
            warnings("{serviceAccountName: web, automountServiceAccountToken: false, containers: [{name: a, image: i}]}")
                .is_empty()
        );
    }

    #[test]
    fn apparmor_from_annotations_and_fields() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    \
            container.apparmor.security.beta.kubernetes.io/a: localhost/k8s-deny-write\n    \
            container.apparmor.security.beta.kubernetes.io/b: runtime/default\n    \
            container.apparmor.security.beta.kubernetes.io/c: unconfined\n    \
            container.apparmor.security.beta.kubernetes.io/gone: unconfined\n\
            spec:\n  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n  containers:\n  \
            - {name: a, image: i}\n  \
            - {name: b, image: i, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: mine}}}\n  \
            - {name: c, image: i}\n";
        let manifest = parse_manifest(text).expect("converts");
        let spec = pod_spec(&manifest);
        let profile = |i: usize| {
            spec.containers[i]
                .security_context
                .as_ref()
                .and_then(|c| c.apparmor_profile.clone())
                .map(|p| (p.r#type(), p.localhost_profile))
        };
        use crate::proto::v1::app_armor_profile::Type;
        assert_eq!(profile(0), Some((Type::Localhost, "k8s-deny-write".into())));
        // The container's own field wins over the annotation.
        assert_eq!(profile(1), Some((Type::Localhost, "mine".into())));
        assert_eq!(profile(2), Some((Type::Unconfined, String::new())));
        assert_eq!(
            spec.security_context
                .as_ref()
                .and_then(|c| c.apparmor_profile.clone())
                .map(|p| p.r#type()),
            Some(Type::RuntimeDefault)
        );
        assert_eq!(
            manifest.warnings,
            [
                "metadata.annotations[container.apparmor.security.beta.kubernetes.io/gone]: no \
              container \"gone\" in the pod; ignored"
            ]
        );
        let bad = text.replace("runtime/default", "docker-default");
        let (path, rule) = field_error_of(&bad);
        assert_eq!(
            path,
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/b]"
        );
        assert!(
            rule.starts_with("expected runtime/default, localhost/<profile> or unconfined"),
            "{rule}"
        );
    }
}
