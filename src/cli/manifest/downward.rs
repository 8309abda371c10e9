//! The downward API's metadata fields, read from the manifest itself for
//! projected volumes (podstart reads them for env and downwardAPI volumes),
//! in the kubelet's file format.

use crate::proto::v1::{PodMetadata, PodSpec};
use crate::volumes::downward;

/// The value of a `metadata.*` field path, as the kubelet writes it (the
/// same text podstart writes in downwardAPI volumes): labels and
/// annotations as sorted `key="value"` lines.
pub(super) fn metadata_field(metadata: &PodMetadata, path: &str) -> Result<String, String> {
    let pod = PodSpec {
        metadata: Some(metadata.clone()),
        ..Default::default()
    };
    downward::field_value(&pod, path).map_err(|_| {
        format!(
            "{path:?} is not a field a volume may name: metadata.name, metadata.namespace, \
             metadata.uid, metadata.labels, metadata.annotations, metadata.labels['KEY'] or \
             metadata.annotations['KEY']"
        )
    })
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
