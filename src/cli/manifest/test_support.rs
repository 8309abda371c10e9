//! What the manifest tests share: building blocks of expected requests, a
//! Pod document around a spec, and checks of field errors.

pub(super) use std::collections::HashMap;

pub(super) use super::{Manifest, ManifestError, parse_manifest};
pub(super) use crate::proto::v1::*;

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

pub(super) fn string_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

pub(super) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: value.to_owned(),
        ..Default::default()
    }
}

pub(super) fn mount(container_path: &str, volume_name: &str) -> Mount {
    Mount {
        container_path: container_path.to_owned(),
        volume_name: volume_name.to_owned(),
        ..Default::default()
    }
}

pub(super) fn pod_spec(manifest: &Manifest) -> &PodSpec {
    manifest.request.pod.as_ref().expect("request has a pod")
}

/// A Pod manifest whose spec is `spec`, written as a YAML flow mapping.
pub(super) fn pod_yaml(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n")
}

pub(super) fn field_error_of(text: &str) -> (String, String) {
    match parse_manifest(text) {
        Err(ManifestError::Fields(errors)) => {
            let first = errors.0.into_iter().next().expect("at least one error");
            (first.path, first.rule)
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

/// Checks that each manifest is refused with a field error at `path` whose
/// rule starts with `rule`: (manifest, path, rule).
pub(super) fn assert_field_errors(cases: &[(&str, &str, &str)]) {
    for (text, path, rule) in cases {
        let (got_path, got_rule) = field_error_of(text);
        assert_eq!(got_path, *path, "manifest: {text}");
        assert!(
            got_rule.starts_with(rule),
            "manifest: {text}\nrule: {got_rule}\nwant: {rule}..."
        );
    }
}

/// As [`assert_field_errors`], with each spec written as a YAML flow mapping
/// and placed in a Pod by [`pod_yaml`]: (spec, path, rule).
pub(super) fn assert_spec_field_errors(cases: &[(&str, &str, &str)]) {
    for (spec, path, rule) in cases {
        let (got_path, got_rule) = field_error_of(&pod_yaml(spec));
        assert_eq!(got_path, *path, "spec: {spec}");
        assert!(
            got_rule.starts_with(rule),
            "spec: {spec}\nrule: {got_rule}\nwant: {rule}..."
        );
    }
}
