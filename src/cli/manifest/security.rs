//! Security settings: the pod's security context (with its sysctls), each
//! container's, and the seccomp and AppArmor profiles both may name.

use std::collections::HashMap;

use super::Converter;
use super::fields::Fields;
use crate::proto::v1::{
    AppArmorProfile, Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
    app_armor_profile, seccomp_profile,
};

pub(super) const SECCOMP_TYPES: &[(&str, seccomp_profile::Type)] = &[
    ("RuntimeDefault", seccomp_profile::Type::RuntimeDefault),
    ("Unconfined", seccomp_profile::Type::Unconfined),
    ("Localhost", seccomp_profile::Type::Localhost),
];

pub(super) const APPARMOR_TYPES: &[(&str, app_armor_profile::Type)] = &[
    ("RuntimeDefault", app_armor_profile::Type::RuntimeDefault),
    ("Unconfined", app_armor_profile::Type::Unconfined),
    ("Localhost", app_armor_profile::Type::Localhost),
];

impl Converter {
    /// The pod security context, and `sysctls`, which PodSpec holds itself.
    pub(super) fn pod_security_context(
        &mut self,
        mut c: Fields,
    ) -> (Option<PodSecurityContext>, HashMap<String, String>) {
        let mut sysctls = HashMap::new();
        for mut sysctl in c.list_of_fields("sysctls") {
            let name = sysctl.string("name").unwrap_or_default();
            let value = sysctl.string("value").unwrap_or_default();
            if sysctls.insert(name.clone(), value).is_some() {
                sysctl.error(
                    sysctl.path_of("name"),
                    format!("sysctl {name:?} is set twice"),
                );
            }
            sysctl.finish();
        }
        let context = PodSecurityContext {
            run_as_user: c.int("runAsUser"),
            run_as_group: c.int("runAsGroup"),
            run_as_non_root: c.bool("runAsNonRoot"),
            supplemental_groups: c.ints("supplementalGroups"),
            fs_group: c.int("fsGroup"),
            seccomp_profile: self.seccomp_profile(&mut c),
            apparmor_profile: apparmor_profile(&mut c),
        };
        c.finish();
        (Some(context), sysctls)
    }

    pub(super) fn seccomp_profile(&mut self, parent: &mut Fields) -> Option<SeccompProfile> {
        let mut p = parent.fields("seccompProfile")?;
        let profile = SeccompProfile {
            r#type: p.enumeration("type", SECCOMP_TYPES),
            localhost_profile: p.string("localhostProfile").unwrap_or_default(),
        };
        if !profile.localhost_profile.is_empty() {
            self.warn(
                p.path_of("localhostProfile"),
                "passed to the runtime as-is (Kubernetes would resolve it under the kubelet's seccomp directory)",
            );
        }
        p.finish();
        Some(profile)
    }

    pub(super) fn security_context(&mut self, mut c: Fields) -> SecurityContext {
        let capabilities = c.fields("capabilities").map(|mut caps| {
            let capabilities = Capabilities {
                add: caps.strings("add"),
                drop: caps.strings("drop"),
            };
            caps.finish();
            capabilities
        });
        let context = SecurityContext {
            privileged: c.bool("privileged"),
            run_as_user: c.int("runAsUser"),
            run_as_group: c.int("runAsGroup"),
            run_as_non_root: c.bool("runAsNonRoot"),
            read_only_root_filesystem: c.bool("readOnlyRootFilesystem"),
            allow_privilege_escalation: c.bool("allowPrivilegeEscalation"),
            capabilities,
            seccomp_profile: self.seccomp_profile(&mut c),
            apparmor_profile: apparmor_profile(&mut c),
        };
        c.finish();
        context
    }
}

/// An `appArmorProfile` field.
pub(super) fn apparmor_profile(parent: &mut Fields) -> Option<AppArmorProfile> {
    let mut p = parent.fields("appArmorProfile")?;
    let profile = AppArmorProfile {
        r#type: p.enumeration("type", APPARMOR_TYPES),
        localhost_profile: p.string("localhostProfile").unwrap_or_default(),
    };
    p.finish();
    Some(profile)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, securityContext: {seLinuxOptions: {level: s0}}}]}",
                "spec.containers[0].securityContext.seLinuxOptions",
                "not supported",
            ),
            (
                "{containers: [{name: a, securityContext: {capabilities: {add: [X], keep: [Y]}}}]}",
                "spec.containers[0].securityContext.capabilities.keep",
                "not supported",
            ),
            (
                "{securityContext: {windowsOptions: {}}, containers: [{name: a}]}",
                "spec.securityContext.windowsOptions",
                "not supported",
            ),
            (
                "{securityContext: {seccompProfile: {type: Strict}}}",
                "spec.securityContext.seccompProfile.type",
                "expected one of RuntimeDefault, Unconfined, Localhost",
            ),
            (
                "{securityContext: {sysctls: [{name: a, value: \"1\"}, {name: a, value: \"2\"}]}}",
                "spec.securityContext.sysctls[1].name",
                "sysctl \"a\" is set twice",
            ),
        ];
        assert_spec_field_errors(cases);
    }
}
