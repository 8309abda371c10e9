//! The pod itself: the Pod document, its metadata and the pod-level fields
//! of its spec (namespaces, DNS, restart policy, grace period), the fields
//! ignored there with a warning, and the state of one conversion.

use std::collections::HashMap;

use crate::cli::yaml::Value;

use super::container::ContainerList;
use super::fields::{Fields, field_error};
use super::{Converter, Manifest, Result};
use crate::proto::v1::{DnsConfig, PodMetadata, PodSpec, RestartPolicy, StartPodRequest};

pub(super) const SCHEDULING: &str = "scheduling field; ignored by podstart";
pub(super) const API_SERVER: &str = "API server field; ignored by podstart";
pub(super) const NO_SERVICE_ACCOUNT: &str = "podstart mounts no service account token; ignored";

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

pub(super) const RESTART_POLICIES: &[(&str, RestartPolicy)] = &[
    ("Always", RestartPolicy::Always),
    ("OnFailure", RestartPolicy::OnFailure),
    ("Never", RestartPolicy::Never),
];

impl Converter {
    pub(super) fn pod(&mut self, document: Value) -> Result<Manifest> {
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

    pub(super) fn metadata(&mut self, mut m: Fields) -> Result<PodMetadata> {
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

    pub(super) fn spec(&mut self, mut s: Fields, metadata: PodMetadata) -> Result<PodSpec> {
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
            ..Default::default()
        };
        s.finish()?;
        self.warn_unmounted_volumes();
        Ok(spec)
    }
}

pub(super) fn dns_config(mut d: Fields) -> Result<DnsConfig> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Manifest, parse_manifest};

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
}
