//! Containers: init, app and ephemeral containers field by field, with
//! their ports and the container fields ignored with a warning. Env,
//! mounts, resources, security and probes have modules of their own.

use super::Converter;
use super::fields::Fields;
use super::probes::{lifecycle, probe};
use super::resources::resources;
use crate::proto::v1::{
    Container, ContainerPort, ContainerRestartPolicy, Protocol, PullPolicy,
    TerminationMessagePolicy,
};

pub(super) const CONTAINER_IGNORED: &[(&str, &str)] = &[(
    "resizePolicy",
    "podstart does not resize containers in place; ignored",
)];

pub(super) const CONTAINER_RESTART_POLICIES: &[(&str, ContainerRestartPolicy)] =
    &[("Always", ContainerRestartPolicy::Always)];

pub(super) const PULL_POLICIES: &[(&str, PullPolicy)] = &[
    ("Always", PullPolicy::Always),
    ("IfNotPresent", PullPolicy::IfNotPresent),
    ("Never", PullPolicy::Never),
];

pub(super) const TERMINATION_MESSAGE_POLICIES: &[(&str, TerminationMessagePolicy)] = &[
    ("File", TerminationMessagePolicy::File),
    (
        "FallbackToLogsOnError",
        TerminationMessagePolicy::FallbackToLogsOnError,
    ),
];

pub(super) const PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

/// Which list a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContainerList {
    Init,
    App,
    Ephemeral,
}

impl Converter {
    pub(super) fn containers(
        &mut self,
        spec: &mut Fields,
        key: &str,
        list: ContainerList,
    ) -> Vec<Container> {
        spec.list_of_fields(key)
            .into_iter()
            .map(|container| self.container(container, list))
            .collect()
    }

    pub(super) fn container(&mut self, mut c: Fields, list: ContainerList) -> Container {
        c.ignore(CONTAINER_IGNORED, &mut self.warnings);
        let target_container_name = match list {
            ContainerList::Ephemeral => c.string("targetContainerName").unwrap_or_default(),
            ContainerList::Init | ContainerList::App => String::new(),
        };
        let env = self.environment(&mut c);
        let mounts = c
            .list_of_fields("volumeMounts")
            .into_iter()
            .filter_map(|mount| self.mount(mount))
            .collect();
        let container = Container {
            name: c.string("name").unwrap_or_default(),
            image: c.string("image").unwrap_or_default(),
            image_pull_policy: c.enumeration("imagePullPolicy", PULL_POLICIES),
            command: c.strings("command"),
            args: c.strings("args"),
            working_dir: c.string("workingDir").unwrap_or_default(),
            env,
            mounts,
            devices: Vec::new(),
            ports: c
                .list_of_fields("ports")
                .into_iter()
                .map(container_port)
                .collect(),
            resources: c.fields("resources").and_then(resources),
            security_context: c
                .fields("securityContext")
                .map(|context| self.security_context(context)),
            lifecycle: c.fields("lifecycle").map(lifecycle),
            startup_probe: c.fields("startupProbe").map(probe),
            liveness_probe: c.fields("livenessProbe").map(probe),
            readiness_probe: c.fields("readinessProbe").map(probe),
            restart_policy: c.enumeration("restartPolicy", CONTAINER_RESTART_POLICIES),
            tty: c.bool("tty").unwrap_or(false),
            stdin: c.bool("stdin").unwrap_or(false),
            stdin_once: c.bool("stdinOnce").unwrap_or(false),
            termination_message_path: c.string("terminationMessagePath").unwrap_or_default(),
            termination_message_policy: c
                .enumeration("terminationMessagePolicy", TERMINATION_MESSAGE_POLICIES),
            target_container_name,
        };
        c.finish();
        container
    }
}

pub(super) fn container_port(mut p: Fields) -> ContainerPort {
    let port = ContainerPort {
        name: p.string("name").unwrap_or_default(),
        container_port: p.int("containerPort").unwrap_or(0),
        host_port: p.int("hostPort").unwrap_or(0),
        host_ip: p.string("hostIP").unwrap_or_default(),
        protocol: p.enumeration("protocol", PROTOCOLS),
    };
    p.finish();
    port
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn single_quoted_escapes_reach_command_and_args() {
        // `''` is one quote inside single quotes, as kubectl reads it.
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
            - name: a\n    image: i\n    command: ['sh', '-c', 'echo it''s ok']\n    \
            args: ['echo ''quoted'' word']\n  \
            - name: b\n    image: i\n    args:\n    - 'echo ''quoted'' word'\n";
        let manifest = parse_manifest(text).expect("converts");
        let containers = &pod_spec(&manifest).containers;
        assert_eq!(
            containers[0].command,
            strings(&["sh", "-c", "echo it's ok"])
        );
        assert_eq!(containers[0].args, strings(&["echo 'quoted' word"]));
        assert_eq!(containers[1].args, strings(&["echo 'quoted' word"]));
    }

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{initContainers: [{name: a, restartPolicy: OnFailure}]}",
                "spec.initContainers[0].restartPolicy",
                "expected one of Always, found \"OnFailure\"",
            ),
            (
                "{containers: [{name: a, imagePullPolicy: always}]}",
                "spec.containers[0].imagePullPolicy",
                "expected one of Always, IfNotPresent, Never",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: \"80\"}]}]}",
                "spec.containers[0].ports[0].containerPort",
                "expected an integer, found a string",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: 4294967296}]}]}",
                "spec.containers[0].ports[0].containerPort",
                "4294967296 is out of range",
            ),
            (
                "{containers: [{name: a, ports: [{containerPort: 80, protocol: tcp}]}]}",
                "spec.containers[0].ports[0].protocol",
                "expected one of TCP, UDP, SCTP, found \"tcp\"",
            ),
            (
                "{containers: [{name: a, targetContainerName: b}]}",
                "spec.containers[0].targetContainerName",
                "not supported",
            ),
            (
                "{containers: [{name: a, tty: \"yes\"}]}",
                "spec.containers[0].tty",
                "expected true or false, found a string",
            ),
            (
                "{ephemeralContainers: [{name: e, workingdir: /x}]}",
                "spec.ephemeralContainers[0].workingdir",
                "not supported",
            ),
            (
                "{containers: {name: a}}",
                "spec.containers",
                "expected a list, found a mapping",
            ),
            (
                "{containers: [nginx]}",
                "spec.containers[0]",
                "expected a mapping, found a string",
            ),
        ];
        assert_spec_field_errors(cases);
    }
}
