//! The downward API's metadata fields, read from the manifest itself for
//! projected volumes (podstart reads them for env and downwardAPI volumes),
//! in the kubelet's file format.

use crate::proto::v1::PodMetadata;

/// The value of a `metadata.*` field path, as the kubelet writes it:
/// labels and annotations as sorted `key="value"` lines.
pub(super) fn metadata_field(metadata: &PodMetadata, path: &str) -> Result<String, String> {
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
    };
    match path {
        "metadata.name" => Ok(metadata.name.clone()),
        "metadata.namespace" => Ok(metadata.namespace.clone()),
        "metadata.uid" => Ok(metadata.uid.clone()),
        "metadata.labels" => Ok(format_map(&metadata.labels)),
        "metadata.annotations" => Ok(format_map(&metadata.annotations)),
        _ => {
            if let Some(key) = keyed("metadata.labels") {
                return Ok(metadata.labels.get(key).cloned().unwrap_or_default());
            }
            if let Some(key) = keyed("metadata.annotations") {
                return Ok(metadata.annotations.get(key).cloned().unwrap_or_default());
            }
            Err(format!(
                "{path:?} is not a field a volume may name: metadata.name, metadata.namespace, \
                 metadata.uid, metadata.labels, metadata.annotations, metadata.labels['KEY'] or \
                 metadata.annotations['KEY']"
            ))
        }
    }
}

/// `key="value"` lines in key order, values quoted as Go's `%q` quotes
/// them, no final newline.
pub(super) fn format_map(map: &std::collections::HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.iter()
        .map(|key| format!("{key}={}", quote(&map[*key])))
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fields_in_the_kubelet_format() {
        let metadata = PodMetadata {
            name: "p".into(),
            namespace: "ns".into(),
            uid: "u".into(),
            labels: [("b", "2"), ("a", "say \"hi\"")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        };
        let cases = [
            ("metadata.name", Ok("p")),
            ("metadata.namespace", Ok("ns")),
            ("metadata.uid", Ok("u")),
            ("metadata.labels", Ok("a=\"say \\\"hi\\\"\"\nb=\"2\"")),
            ("metadata.labels['b']", Ok("2")),
            ("metadata.annotations", Ok("")),
            ("status.podIP", Err(())),
        ];
        for (path, want) in cases {
            let got = metadata_field(&metadata, path);
            match want {
                Ok(want) => assert_eq!(got.as_deref(), Ok(want), "{path}"),
                Err(()) => assert!(got.is_err(), "{path}"),
            }
        }
    }
}
