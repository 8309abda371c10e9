//! Container environment, built in Kubernetes' order: `envFrom` first
//! (every key of a ConfigMap or Secret of the manifest, with its prefix),
//! then `env`. ConfigMap and Secret keys are resolved here into values;
//! the pod's own fields (`fieldRef`, `resourceFieldRef`) are left for
//! podstart to read (`EnvVar.value_from`).

use super::Converter;
use super::config::ConfigKind;
use super::fields::Fields;
use crate::proto::v1::{EnvVar, FieldSource, ResourceFieldSource, field_source};

impl Converter {
    /// The container's `envFrom` and `env`, taken out of `c`.
    pub(super) fn environment(&mut self, c: &mut Fields) -> Vec<EnvVar> {
        let mut vars = Vec::new();
        for source in c.list_of_fields("envFrom") {
            self.env_from(source, &mut vars);
        }
        for var in c.list_of_fields("env") {
            if let Some(var) = self.env_var(var) {
                vars.push(var);
            }
        }
        vars
    }

    fn env_from(&mut self, mut e: Fields, vars: &mut Vec<EnvVar>) {
        let prefix = e.string("prefix").unwrap_or_default();
        let mut found = Vec::new();
        for (key, kind) in [
            ("configMapRef", ConfigKind::ConfigMap),
            ("secretRef", ConfigKind::Secret),
        ] {
            if let Some(mut r) = e.fields(key) {
                let name = r.string("name").unwrap_or_default();
                let optional = r.bool("optional").unwrap_or(false);
                r.finish();
                found.push((r.path, kind, name, optional));
            }
        }
        e.finish();
        if found.len() > 1 {
            e.error(
                e.path.clone(),
                "only one of configMapRef and secretRef may be set",
            );
            return;
        }
        let Some((path, kind, name, optional)) = found.pop() else {
            e.error(
                e.path.clone(),
                "one of configMapRef and secretRef is required",
            );
            return;
        };
        let document = match self.config_or_error(kind, &name) {
            Ok(document) => document,
            Err(_) if optional => return,
            Err(rule) => {
                self.error(path, rule);
                return;
            }
        };
        let mut skipped = Vec::new();
        let mut resolved = Vec::new();
        for (key, bytes) in &document.data {
            let var_name = format!("{prefix}{key}");
            if !crate::spec::validate::is_env_var_name(&var_name) {
                skipped.push(var_name);
                continue;
            }
            match std::str::from_utf8(bytes) {
                Ok(value) => resolved.push(literal(var_name, value)),
                Err(_) => self.error(
                    path.clone(),
                    format!("key {key} of {} {name} is not UTF-8 text", kind.name()),
                ),
            }
        }
        if !skipped.is_empty() {
            // The kubelet's InvalidEnvironmentVariableNames event.
            let namespace = self.namespace.clone();
            self.warn(
                path,
                format!(
                    "Keys [{}] from the EnvFrom {} {namespace}/{name} were skipped since they \
                     are considered invalid environment variable names.",
                    skipped.join(", "),
                    kind.name().to_ascii_lowercase(),
                ),
            );
        }
        vars.extend(resolved);
    }

    fn env_var(&mut self, mut e: Fields) -> Option<EnvVar> {
        let name = e.string("name").unwrap_or_default();
        let value = e.string("value");
        let from = e.fields("valueFrom");
        e.finish();
        let Some(from) = from else {
            return Some(EnvVar {
                name,
                value: value.unwrap_or_default(),
                ..Default::default()
            });
        };
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            e.error(
                e.path_of("valueFrom"),
                "may not be set when value is not empty",
            );
            return None;
        }
        self.value_from(name, from)
    }

    fn value_from(&mut self, name: String, mut f: Fields) -> Option<EnvVar> {
        let mut sources = Vec::new();
        for (key, kind) in [
            ("configMapKeyRef", Some(ConfigKind::ConfigMap)),
            ("secretKeyRef", Some(ConfigKind::Secret)),
            ("fieldRef", None),
            ("resourceFieldRef", None),
        ] {
            if let Some(source) = f.fields(key) {
                sources.push((key, kind, source));
            }
        }
        f.finish();
        if sources.len() != 1 {
            let keys: Vec<&str> = sources.iter().map(|(key, _, _)| *key).collect();
            f.error(
                f.path.clone(),
                format!(
                    "exactly one of configMapKeyRef, secretKeyRef, fieldRef and \
                     resourceFieldRef must be set, found {}",
                    if keys.is_empty() {
                        "none".to_owned()
                    } else {
                        keys.join(" and ")
                    }
                ),
            );
            return None;
        }
        let (key, kind, mut s) = sources.remove(0);
        match (key, kind) {
            (_, Some(kind)) => {
                let document_name = s.string("name").unwrap_or_default();
                let data_key = s.string("key").unwrap_or_default();
                let optional = s.bool("optional").unwrap_or(false);
                s.finish();
                let document = match self.config_or_error(kind, &document_name) {
                    Ok(document) => document,
                    Err(_) if optional => return None,
                    Err(rule) => {
                        self.error(s.path, rule);
                        return None;
                    }
                };
                let Some(bytes) = document.data.get(&data_key) else {
                    if !optional {
                        let rule = self.missing_key(document, &data_key);
                        self.error(s.path_of("key"), rule);
                    }
                    return None;
                };
                match std::str::from_utf8(bytes) {
                    Ok(value) => Some(literal(name, value)),
                    Err(_) => {
                        s.error(
                            s.path_of("key"),
                            format!("key {data_key} is not UTF-8 text"),
                        );
                        None
                    }
                }
            }
            ("fieldRef", None) => {
                let source = field_ref(&mut s);
                s.finish();
                Some(from_pod(name, source))
            }
            _ => {
                let source = resource_field_ref(&mut s);
                s.finish();
                Some(from_pod(name, source))
            }
        }
    }
}

/// A `fieldRef`: its fieldPath (apiVersion v1 only).
pub(super) fn field_ref(s: &mut Fields) -> FieldSource {
    if let Some(version) = s.string("apiVersion")
        && version != "v1"
    {
        s.error(
            s.path_of("apiVersion"),
            format!("expected \"v1\", found {version:?}"),
        );
    }
    let path = s.string("fieldPath").unwrap_or_default();
    if path.is_empty() {
        s.error(s.path_of("fieldPath"), "required");
    }
    FieldSource {
        source: Some(field_source::Source::FieldPath(path)),
    }
}

/// A `resourceFieldRef`; the divisor as written (a quantity).
pub(super) fn resource_field_ref(s: &mut Fields) -> FieldSource {
    let divisor = s
        .get("divisor", |value, path| match value {
            crate::cli::yaml::Value::String(text) => Ok(text),
            crate::cli::yaml::Value::Number(number) => Ok(number.to_string()),
            other => Err(super::fields::field_error(
                path,
                format!(
                    "expected a quantity, found {}",
                    super::fields::describe(&other)
                ),
            )),
        })
        .unwrap_or_default();
    FieldSource {
        source: Some(field_source::Source::ResourceField(ResourceFieldSource {
            container_name: s.string("containerName").unwrap_or_default(),
            resource: s.string("resource").unwrap_or_default(),
            divisor,
        })),
    }
}

fn from_pod(name: String, source: FieldSource) -> EnvVar {
    EnvVar {
        name,
        value: String::new(),
        value_from: Some(source),
    }
}

/// A value that is not `$(VAR)`-expanded, as the kubelet leaves values
/// from ConfigMaps and Secrets: every `$` doubled.
fn literal(name: String, value: &str) -> EnvVar {
    EnvVar {
        name,
        value: value.replace('$', "$$"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    const DOCUMENTS: &str = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: game}\n\
        data: {lives: '3', 1bad: x, mode: $(HOME), b.ok: y}\n---\napiVersion: v1\nkind: Secret\n\
        metadata: {name: db}\nstringData: {user: admin, pass: s3cret}\n";

    fn converted(spec: &str) -> Manifest {
        parse_manifest(&format!("{}{DOCUMENTS}", pod_yaml(spec))).expect("converts")
    }

    #[test]
    fn env_from_first_then_env_with_values_resolved() {
        let manifest = converted(
            "{containers: [{name: a, image: i, \
             envFrom: [{configMapRef: {name: game}}, {secretRef: {name: db}, prefix: DB_}, \
             {configMapRef: {name: absent, optional: true}}], \
             env: [{name: LIVES, valueFrom: {configMapKeyRef: {name: game, key: lives}}}, \
             {name: GONE, valueFrom: {configMapKeyRef: {name: game, key: nope, optional: true}}}, \
             {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}, \
             {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}, \
             {name: PLAIN, value: $(lives)}]}]}",
        );
        let field = |path: &str| EnvVar {
            value_from: Some(FieldSource {
                source: Some(field_source::Source::FieldPath(path.into())),
            }),
            ..env("NODE", "")
        };
        let resource = EnvVar {
            value_from: Some(FieldSource {
                source: Some(field_source::Source::ResourceField(ResourceFieldSource {
                    container_name: String::new(),
                    resource: "limits.memory".into(),
                    divisor: "1Mi".into(),
                })),
            }),
            ..env("MEM", "")
        };
        assert_eq!(
            pod_spec(&manifest).containers[0].env,
            vec![
                env("b.ok", "y"),
                env("lives", "3"),
                // Not expanded, as the kubelet leaves ConfigMap values.
                env("mode", "$$(HOME)"),
                env("DB_pass", "s3cret"),
                env("DB_user", "admin"),
                env("LIVES", "3"),
                field("spec.nodeName"),
                resource,
                env("PLAIN", "$(lives)"),
            ]
        );
        assert_eq!(
            manifest.warnings,
            [
                "spec.containers[0].envFrom[0].configMapRef: Keys [1bad] from the EnvFrom configmap \
              default/game were skipped since they are considered invalid environment variable \
              names."
            ]
        );
    }

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, image: i}, {name: b, image: i, envFrom: [{configMapRef: {name: c}}]}]}",
                "spec.containers[1].envFrom[0].configMapRef",
                "configmap \"c\" not found",
            ),
            (
                "{containers: [{name: a, env: [{name: X, valueFrom: {secretKeyRef: {name: nope, key: k}}}]}]}",
                "spec.containers[0].env[0].valueFrom.secretKeyRef",
                "secret \"nope\" not found",
            ),
            (
                "{containers: [{name: a, env: [{name: X, valueFrom: {configMapKeyRef: {name: game, key: k}}}]}]}",
                "spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
                "couldn't find key k in ConfigMap default/game",
            ),
            (
                "{containers: [{name: a, env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: k}}}]}]}",
                "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
                "couldn't find key k in Secret default/db",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}]}",
                "spec.containers[0].env[0].valueFrom",
                "may not be set when value is not empty",
            ),
            (
                "{containers: [{name: a, env: [{name: X, valueFrom: {}}]}]}",
                "spec.containers[0].env[0].valueFrom",
                "exactly one of configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef must be set, found none",
            ),
            (
                "{containers: [{name: a, env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.name, apiVersion: v2}}}]}]}",
                "spec.containers[0].env[0].valueFrom.fieldRef.apiVersion",
                "expected \"v1\", found \"v2\"",
            ),
            (
                "{containers: [{name: a, envFrom: [{configMapRef: {name: game}, secretRef: {name: db}}]}]}",
                "spec.containers[0].envFrom[0]",
                "only one of configMapRef and secretRef may be set",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: 8080}]}]}",
                "spec.containers[0].env[0].value",
                "expected a string, found a number (quote it)",
            ),
        ];
        for (spec, path, rule) in cases {
            let (got_path, got_rule) = field_error_of(&format!("{}{DOCUMENTS}", pod_yaml(spec)));
            assert_eq!(got_path, *path, "spec: {spec}");
            assert!(
                got_rule.starts_with(rule),
                "spec: {spec}\nrule: {got_rule}\nwant: {rule}..."
            );
        }
    }
}
