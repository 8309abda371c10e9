//! ConfigMap and Secret documents beside the pod: their data (`data`,
//! `binaryData`, `stringData`) read into bytes, and looked up by the pod's
//! volumes and environment as the kubelet looks them up in the API server
//! (same namespace as the pod), with the kubelet's messages when a
//! reference does not resolve.

use std::collections::BTreeMap;

use base64::Engine;

use super::Converter;
use super::fields::Fields;
use super::pod::METADATA_IGNORED;
use crate::cli::yaml::Value;

/// Which kind of document holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
        }
    }

    /// As the API server names the resource in its "not found" errors.
    fn resource(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// A ConfigMap or Secret document.
#[derive(Debug)]
pub(super) struct ConfigDocument {
    pub(super) kind: ConfigKind,
    pub(super) name: String,
    /// Unset: the pod's namespace.
    namespace: Option<String>,
    /// Keys in order, values decoded.
    pub(super) data: BTreeMap<String, Vec<u8>>,
}

/// Fields of a ConfigMap or Secret with no meaning on a node.
const CONFIG_IGNORED: &[&str] = &["immutable"];

impl Converter {
    /// Reads a ConfigMap or Secret document (`number` counts the
    /// documents); its field errors join the conversion's.
    pub(super) fn config_document(&mut self, value: Value, number: usize) {
        let kind = match value.get("kind").and_then(Value::as_str) {
            Some("Secret") => ConfigKind::Secret,
            _ => ConfigKind::ConfigMap,
        };
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let root = match &name {
            Some(name) => format!("{}/{name}", kind.name()),
            None => format!("document {number} ({})", kind.name()),
        };
        let Some(mut d) = Fields::new(value, root, &self.errors) else {
            return;
        };
        d.take("kind");
        match d.string("apiVersion") {
            Some(version) if version == "v1" => {}
            other => d.error(
                d.path_of("apiVersion"),
                format!(
                    "expected \"v1\" for kind {}, found {}",
                    kind.name(),
                    other.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
                ),
            ),
        }
        for key in CONFIG_IGNORED {
            d.take(key);
        }
        let mut namespace = None;
        match d.fields("metadata") {
            Some(mut m) => {
                m.ignore(METADATA_IGNORED, &mut self.warnings);
                if m.string("name").is_none_or(|name| name.is_empty()) {
                    m.error(m.path_of("name"), "required");
                }
                namespace = m.string("namespace").filter(|ns| !ns.is_empty());
                // Labels and annotations describe the object, not its data.
                m.take("labels");
                m.take("annotations");
                m.take("uid");
                m.finish();
            }
            None => d.error(format!("{}.metadata.name", d.path), "required"),
        }
        let mut data = BTreeMap::new();
        let text_key = match kind {
            ConfigKind::ConfigMap => "data",
            ConfigKind::Secret => "stringData",
        };
        let base64_key = match kind {
            ConfigKind::ConfigMap => "binaryData",
            ConfigKind::Secret => "data",
        };
        for (key, encoded) in d.string_pairs(base64_key) {
            let path = format!("{}[{key}]", d.path_of(base64_key));
            let compact: String = encoded.split_whitespace().collect();
            match base64::engine::general_purpose::STANDARD.decode(compact) {
                Ok(bytes) => {
                    data.insert(key, bytes);
                }
                Err(_) => d.error(path, "not valid base64"),
            }
        }
        for (key, text) in d.string_pairs(text_key) {
            let path = format!("{}[{key}]", d.path_of(text_key));
            // A Secret's stringData wins over its data, as the API server
            // merges them; a ConfigMap key may be in one of the two only.
            if data.insert(key.clone(), text.into_bytes()).is_some()
                && kind == ConfigKind::ConfigMap
            {
                d.error(path, format!("duplicate of key {key:?} in binaryData"));
            }
        }
        for key in data.keys() {
            if !valid_key(key) {
                d.error(
                    d.path.clone(),
                    format!(
                        "key {key:?}: a valid config key must consist of alphanumeric \
                         characters, '-', '_' or '.'"
                    ),
                );
            }
        }
        if kind == ConfigKind::Secret {
            // Any type: its keys are read as they are.
            d.string("type");
        }
        d.finish();
        let Some(name) = name else {
            return;
        };
        self.configs.push(ConfigDocument {
            kind,
            name,
            namespace,
            data,
        });
    }

    /// The document of `kind` named `name` in the pod's namespace.
    pub(super) fn config(&self, kind: ConfigKind, name: &str) -> Option<&ConfigDocument> {
        self.configs.iter().find(|c| {
            c.kind == kind
                && c.name == name
                && c.namespace.as_deref().unwrap_or(&self.namespace) == self.namespace
        })
    }

    /// As [`Converter::config`]; absent, the kubelet's message.
    pub(super) fn config_or_error(
        &self,
        kind: ConfigKind,
        name: &str,
    ) -> Result<&ConfigDocument, String> {
        self.config(kind, name).ok_or_else(|| {
            format!(
                "{} {name:?} not found (no {} of that name in namespace {:?} among the \
                 manifest's documents)",
                kind.resource(),
                kind.name(),
                self.namespace
            )
        })
    }

    /// The kubelet's message for a key missing from a document.
    pub(super) fn missing_key(&self, document: &ConfigDocument, key: &str) -> String {
        format!(
            "couldn't find key {key} in {} {}/{}",
            document.kind.name(),
            self.namespace,
            document.name
        )
    }
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 bytes, not
/// `.` or `..`.
pub(super) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn config_documents_read_every_kind_of_data() {
        let text = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\nimmutable: true\n\
             data: {{a: one}}\nbinaryData: {{b: dHdv}}\n---\napiVersion: v1\nkind: Secret\n\
             metadata: {{name: s, namespace: default}}\ntype: Opaque\ndata: {{c: dGhyZWU=, d: eA==}}\n\
             stringData: {{d: four}}\n",
            pod_yaml(
                "{containers: [{name: a, image: i, env: [\
                 {name: A, valueFrom: {configMapKeyRef: {name: cm, key: a}}},\
                 {name: B, valueFrom: {configMapKeyRef: {name: cm, key: b}}},\
                 {name: C, valueFrom: {secretKeyRef: {name: s, key: c}}},\
                 {name: D, valueFrom: {secretKeyRef: {name: s, key: d}}}]}]}"
            )
        );
        let manifest = parse_manifest(&text).expect("converts");
        assert_eq!(
            pod_spec(&manifest).containers[0].env,
            vec![
                env("A", "one"),
                env("B", "two"),
                env("C", "three"),
                env("D", "four")
            ]
        );
    }

    #[test]
    fn config_document_errors_name_the_document() {
        let pod = pod_yaml("{containers: [{name: a, image: i}]}");
        let cases: &[(&str, &str, &str)] = &[
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '@@'}\n",
                "Secret/s.data[k]",
                "not valid base64",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: x}\nbinaryData: {a: eA==}\n",
                "ConfigMap/c.data[a]",
                "duplicate of key \"a\" in binaryData",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a b: x}\n",
                "ConfigMap/c",
                "key \"a b\": a valid config key",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nextra: 1\n",
                "ConfigMap/c.extra",
                "not supported",
            ),
            (
                "apiVersion: v2\nkind: ConfigMap\nmetadata: {name: c}\n",
                "ConfigMap/c.apiVersion",
                "expected \"v1\" for kind ConfigMap, found \"v2\"",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\ndata: {a: x}\n",
                "document 2 (ConfigMap).metadata.name",
                "required",
            ),
        ];
        for (document, path, rule) in cases {
            let text = format!("{pod}---\n{document}");
            let (got_path, got_rule) = field_error_of(&text);
            assert_eq!(got_path, *path, "{document}");
            assert!(got_rule.starts_with(rule), "{got_rule}\nwant: {rule}");
        }
    }
}
