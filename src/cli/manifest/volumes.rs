//! Volumes and mounts: the pod's volumes as podstart's API spells them —
//! emptyDir, configMap / secret / projected (their files resolved here from
//! the manifest's documents), downwardAPI and hostPath — and each
//! container's volumeMounts by volume name. Every other volume source is
//! refused.

use super::Converter;
use super::config::ConfigKind;
use super::env::{field_ref, resource_field_ref};
use super::fields::{Fields, describe, field_error};
use crate::cli::yaml::Value;
use crate::proto::v1::{
    ConfigFile, ConfigVolume, DownwardApiFile, DownwardApiVolume, EmptyDirVolume, FieldSource,
    HostPathType, HostPathVolume, Mount, MountPropagation, StorageMedium, Volume, field_source,
    volume::Source,
};
use crate::quantity;

pub(super) const PROPAGATIONS: &[(&str, MountPropagation)] = &[
    ("None", MountPropagation::Private),
    ("HostToContainer", MountPropagation::HostToContainer),
    ("Bidirectional", MountPropagation::Bidirectional),
];

pub(super) const HOST_PATH_TYPES: &[(&str, HostPathType)] = &[
    ("DirectoryOrCreate", HostPathType::DirectoryOrCreate),
    ("Directory", HostPathType::Directory),
    ("FileOrCreate", HostPathType::FileOrCreate),
    ("File", HostPathType::File),
    ("Socket", HostPathType::Socket),
    ("CharDevice", HostPathType::CharDevice),
    ("BlockDevice", HostPathType::BlockDevice),
];

/// The volume sources podstart takes.
pub(super) const SOURCES: &[&str] = &[
    "emptyDir",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
    "hostPath",
];

impl Converter {
    pub(super) fn volume(&mut self, mut v: Fields) -> Option<Volume> {
        let name = v.string("name").unwrap_or_default();
        if name.is_empty() {
            v.error(v.path_of("name"), "required");
        } else if self.volumes.contains(&name) {
            v.error(
                v.path_of("name"),
                format!("volume {name:?} is declared twice"),
            );
        }
        let given: Vec<String> = v.keys();
        for key in &given {
            if !SOURCES.contains(&key.as_str()) {
                let rule = match key.as_str() {
                    "persistentVolumeClaim" | "ephemeral" => {
                        "not supported: podstart provisions no persistent volumes (use hostPath \
                         or emptyDir)"
                    }
                    _ => {
                        "not supported: podstart takes emptyDir, configMap, secret, projected, \
                         downwardAPI and hostPath volumes"
                    }
                };
                v.error(v.path_of(key), rule);
                v.take(key);
            }
        }
        let sources: Vec<&str> = SOURCES
            .iter()
            .copied()
            .filter(|key| given.iter().any(|g| g == key))
            .collect();
        if sources.len() > 1 {
            v.error(
                v.path.clone(),
                format!(
                    "only one volume source may be set, found {}",
                    sources.join(" and ")
                ),
            );
            return None;
        }
        let source = match sources.first().copied() {
            // No source at all is an emptyDir, as the API server defaults it.
            None if given.is_empty() => Some(Source::EmptyDir(EmptyDirVolume::default())),
            None => None,
            Some("emptyDir") => v.fields("emptyDir").map(empty_dir).map(Source::EmptyDir),
            Some("hostPath") => v.fields("hostPath").map(host_path).map(Source::HostPath),
            Some("downwardAPI") => v
                .fields("downwardAPI")
                .map(|d| Source::DownwardApi(downward_api(d))),
            Some("configMap") => v
                .fields("configMap")
                .map(|c| Source::Config(self.config_volume(c, ConfigKind::ConfigMap))),
            Some("secret") => v
                .fields("secret")
                .map(|c| Source::Config(self.config_volume(c, ConfigKind::Secret))),
            Some(_) => v
                .fields("projected")
                .map(|p| Source::Config(self.projected(p))),
        };
        v.finish();
        self.volumes.insert(name.clone());
        Some(Volume { name, source })
    }

    /// A configMap or secret volume: the document's keys (or the items) as
    /// files.
    fn config_volume(&mut self, mut c: Fields, kind: ConfigKind) -> ConfigVolume {
        let name_key = match kind {
            ConfigKind::ConfigMap => "name",
            ConfigKind::Secret => "secretName",
        };
        let default_mode = mode(&mut c, "defaultMode");
        let files = self.config_files(&mut c, kind, name_key);
        c.finish();
        ConfigVolume {
            files,
            default_mode,
            secret: kind == ConfigKind::Secret,
        }
    }

    /// The files of one ConfigMap or Secret reference (`name_key`,
    /// `items`, `optional`), taken out of `c`.
    fn config_files(
        &mut self,
        c: &mut Fields,
        kind: ConfigKind,
        name_key: &str,
    ) -> Vec<ConfigFile> {
        let name = c.string(name_key).unwrap_or_default();
        let optional = c.bool("optional").unwrap_or(false);
        let items: Vec<(String, String, String, Option<i32>)> = c
            .list_of_fields("items")
            .into_iter()
            .map(|mut item| {
                let key = item.string("key").unwrap_or_default();
                let path = item.string("path").unwrap_or_default();
                let mode = mode(&mut item, "mode");
                let at = item.path.clone();
                item.finish();
                (at, key, path, mode)
            })
            .collect();
        let document = match self.config_or_error(kind, &name) {
            Ok(document) => document,
            Err(_) if optional => return Vec::new(),
            Err(rule) => {
                self.error(c.path_of(name_key), rule);
                return Vec::new();
            }
        };
        if items.is_empty() {
            return document
                .data
                .iter()
                .map(|(key, data)| ConfigFile {
                    path: key.clone(),
                    data: data.clone(),
                    mode: None,
                })
                .collect();
        }
        let mut files = Vec::new();
        let mut missing = Vec::new();
        for (at, key, path, mode) in items {
            match document.data.get(&key) {
                Some(data) => files.push(ConfigFile {
                    path,
                    data: data.clone(),
                    mode,
                }),
                None if optional => {}
                None => missing.push((at, key)),
            }
        }
        for (at, key) in missing {
            // The kubelet's MountVolume.SetUp failure.
            let rule = match kind {
                ConfigKind::ConfigMap => {
                    format!("configmap references non-existent config key: {key}")
                }
                ConfigKind::Secret => format!("references non-existent secret key: {key}"),
            };
            self.error(format!("{at}.key"), rule);
        }
        files
    }

    /// A projected volume: the files of its ConfigMap, Secret and downward
    /// API sources joined; the downward API's metadata fields are read from
    /// the manifest.
    fn projected(&mut self, mut p: Fields) -> ConfigVolume {
        let default_mode = mode(&mut p, "defaultMode");
        let mut files = Vec::new();
        let mut secret = false;
        for mut source in p.list_of_fields("sources") {
            if let Some(mut c) = source.fields("configMap") {
                files.extend(self.config_files(&mut c, ConfigKind::ConfigMap, "name"));
                c.finish();
            }
            if let Some(mut c) = source.fields("secret") {
                secret = true;
                files.extend(self.config_files(&mut c, ConfigKind::Secret, "name"));
                c.finish();
            }
            if let Some(d) = source.fields("downwardAPI") {
                files.extend(self.projected_downward_api(d));
            }
            for key in [
                "serviceAccountToken",
                "clusterTrustBundle",
                "podCertificate",
            ] {
                if source.take(key).is_some() {
                    source.error(
                        source.path_of(key),
                        "not supported: podstart issues no credentials or trust bundles",
                    );
                }
            }
            source.finish();
        }
        p.finish();
        ConfigVolume {
            files,
            default_mode,
            secret,
        }
    }

    /// The downward API source of a projected volume, read from the pod's
    /// metadata (the only fields a volume may name besides resources).
    fn projected_downward_api(&mut self, mut d: Fields) -> Vec<ConfigFile> {
        let api = downward_api_files(&mut d);
        d.finish();
        let Some(metadata) = self.metadata.clone() else {
            return Vec::new();
        };
        let mut files = Vec::new();
        for (at, file) in api {
            let value = match file.source.and_then(|s| s.source) {
                Some(field_source::Source::FieldPath(path)) => {
                    match super::downward::metadata_field(&metadata, &path) {
                        Ok(value) => value,
                        Err(rule) => {
                            self.error(format!("{at}.fieldRef.fieldPath"), rule);
                            continue;
                        }
                    }
                }
                _ => {
                    self.error(
                        format!("{at}.resourceFieldRef"),
                        "not supported in a projected volume: use a downwardAPI volume",
                    );
                    continue;
                }
            };
            files.push(ConfigFile {
                path: file.path,
                data: value.into_bytes(),
                mode: file.mode,
            });
        }
        files
    }

    pub(super) fn mount(&mut self, mut m: Fields) -> Option<Mount> {
        if m.take("subPathExpr").is_some() {
            m.error(
                m.path_of("subPathExpr"),
                "not supported: expand the variables into subPath",
            );
        }
        let name = m.string("name").unwrap_or_default();
        if !self.volumes.contains(&name) {
            m.error(
                m.path_of("name"),
                format!("no volume {name:?} in spec.volumes"),
            );
        }
        let mount = Mount {
            container_path: m.string("mountPath").unwrap_or_default(),
            read_only: m.bool("readOnly").unwrap_or(false),
            propagation: m.enumeration("mountPropagation", PROPAGATIONS),
            sub_path: m.string("subPath").unwrap_or_default(),
            volume_name: name,
            ..Default::default()
        };
        m.finish();
        Some(mount)
    }
}

fn empty_dir(mut e: Fields) -> EmptyDirVolume {
    let medium = match e.string("medium").as_deref() {
        None | Some("") => StorageMedium::Unspecified,
        Some("Memory") => StorageMedium::Memory,
        Some(other) => {
            e.error(
                e.path_of("medium"),
                format!(
                    "expected \"\" (the node's disk) or Memory, found {other:?} (podstart has no \
                     huge page volumes)"
                ),
            );
            StorageMedium::Unspecified
        }
    };
    let volume = EmptyDirVolume {
        medium: medium.into(),
        size_limit_bytes: e.quantity("sizeLimit", quantity::parse_units),
    };
    e.finish();
    volume
}

fn host_path(mut h: Fields) -> HostPathVolume {
    let volume = HostPathVolume {
        path: h.string("path").unwrap_or_default(),
        r#type: h.enumeration("type", HOST_PATH_TYPES),
    };
    h.finish();
    volume
}

fn downward_api(mut d: Fields) -> DownwardApiVolume {
    let default_mode = mode(&mut d, "defaultMode");
    let files = downward_api_files(&mut d)
        .into_iter()
        .map(|(_, file)| file)
        .collect();
    d.finish();
    DownwardApiVolume {
        files,
        default_mode,
    }
}

/// The `items` of a downward API volume or projection, with their paths.
fn downward_api_files(d: &mut Fields) -> Vec<(String, DownwardApiFile)> {
    let mut files = Vec::new();
    for mut item in d.list_of_fields("items") {
        let path = item.string("path").unwrap_or_default();
        let mode = mode(&mut item, "mode");
        let source: Option<FieldSource> =
            match (item.fields("fieldRef"), item.fields("resourceFieldRef")) {
                (Some(mut f), None) => {
                    let source = field_ref(&mut f);
                    f.finish();
                    Some(source)
                }
                (None, Some(mut r)) => {
                    let source = resource_field_ref(&mut r);
                    r.finish();
                    Some(source)
                }
                _ => {
                    item.error(
                        item.path.clone(),
                        "exactly one of fieldRef and resourceFieldRef must be set",
                    );
                    None
                }
            };
        let at = item.path.clone();
        item.finish();
        files.push((at, DownwardApiFile { path, source, mode }));
    }
    files
}

/// A file mode: a number (`420`), or octal digits after a leading zero
/// (`0644`), as YAML 1.1 and so kubectl read them.
fn mode(f: &mut Fields, key: &str) -> Option<i32> {
    f.get(key, |value, path| {
        let parsed = match &value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text
                .strip_prefix("0o")
                .or_else(|| text.strip_prefix('0'))
                .and_then(|digits| i64::from_str_radix(digits, 8).ok()),
            _ => None,
        };
        parsed
            .and_then(|mode| i32::try_from(mode).ok())
            .ok_or_else(|| {
                field_error(
                    path,
                    format!(
                        "expected a file mode (0644, or 420), found {}",
                        match value {
                            Value::String(text) => format!("{text:?}"),
                            other => describe(&other).to_owned(),
                        }
                    ),
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    const DOCUMENTS: &str = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n\
        data: {nginx.conf: 'worker_processes 1;', index.html: hi}\n---\napiVersion: v1\n\
        kind: Secret\nmetadata: {name: tls}\ndata: {tls.crt: Y2VydA==, tls.key: a2V5}\n";

    fn volumes(volumes: &str) -> Vec<Volume> {
        let spec = format!("{{volumes: {volumes}, containers: [{{name: a, image: i}}]}}");
        let manifest =
            parse_manifest(&format!("{}{DOCUMENTS}", pod_yaml(&spec))).expect("converts");
        pod_spec(&manifest).volumes.clone()
    }

    fn file(path: &str, data: &str, mode: Option<i32>) -> ConfigFile {
        ConfigFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn volume(name: &str, source: volume::Source) -> Volume {
        Volume {
            name: name.into(),
            source: Some(source),
        }
    }

    #[test]
    fn every_source_converts() {
        use volume::Source;
        let got = volumes(
            "[{name: scratch}, \
             {name: cache, emptyDir: {medium: Memory, sizeLimit: 64Mi}}, \
             {name: conf, configMap: {name: web, defaultMode: 0440, items: [{key: nginx.conf, path: conf/nginx.conf, mode: 384}]}}, \
             {name: all, configMap: {name: web}}, \
             {name: none, configMap: {name: absent, optional: true}}, \
             {name: certs, secret: {secretName: tls, items: [{key: tls.key, path: key, mode: '0400'}]}}, \
             {name: mixed, projected: {defaultMode: 420, sources: [{configMap: {name: web, items: [{key: index.html, path: index.html}]}}, \
             {secret: {name: tls, items: [{key: tls.crt, path: tls/crt}]}}, \
             {downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}]}}, \
             {name: info, downwardAPI: {defaultMode: 0644, items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}, \
             {path: cpu, resourceFieldRef: {containerName: a, resource: limits.cpu, divisor: 1m}}]}}, \
             {name: sock, hostPath: {path: /run/x.sock, type: Socket}}]",
        );
        let want = vec![
            volume("scratch", Source::EmptyDir(EmptyDirVolume::default())),
            volume(
                "cache",
                Source::EmptyDir(EmptyDirVolume {
                    medium: StorageMedium::Memory.into(),
                    size_limit_bytes: Some(64 << 20),
                }),
            ),
            volume(
                "conf",
                Source::Config(ConfigVolume {
                    files: vec![file("conf/nginx.conf", "worker_processes 1;", Some(0o600))],
                    default_mode: Some(0o440),
                    secret: false,
                }),
            ),
            volume(
                "all",
                Source::Config(ConfigVolume {
                    files: vec![
                        file("index.html", "hi", None),
                        file("nginx.conf", "worker_processes 1;", None),
                    ],
                    default_mode: None,
                    secret: false,
                }),
            ),
            volume("none", Source::Config(ConfigVolume::default())),
            volume(
                "certs",
                Source::Config(ConfigVolume {
                    files: vec![file("key", "key", Some(0o400))],
                    default_mode: None,
                    secret: true,
                }),
            ),
            volume(
                "mixed",
                Source::Config(ConfigVolume {
                    files: vec![
                        file("index.html", "hi", None),
                        file("tls/crt", "cert", None),
                        file("name", "p", None),
                    ],
                    default_mode: Some(420),
                    secret: true,
                }),
            ),
            volume(
                "info",
                Source::DownwardApi(DownwardApiVolume {
                    files: vec![
                        DownwardApiFile {
                            path: "labels".into(),
                            source: Some(FieldSource {
                                source: Some(field_source::Source::FieldPath(
                                    "metadata.labels".into(),
                                )),
                            }),
                            mode: None,
                        },
                        DownwardApiFile {
                            path: "cpu".into(),
                            source: Some(FieldSource {
                                source: Some(field_source::Source::ResourceField(
                                    ResourceFieldSource {
                                        container_name: "a".into(),
                                        resource: "limits.cpu".into(),
                                        divisor: "1m".into(),
                                    },
                                )),
                            }),
                            mode: None,
                        },
                    ],
                    default_mode: Some(0o644),
                }),
            ),
            volume(
                "sock",
                Source::HostPath(HostPathVolume {
                    path: "/run/x.sock".into(),
                    r#type: HostPathType::Socket.into(),
                }),
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn mounts_name_their_volume() {
        let manifest = parse_manifest(&pod_yaml(
            "{volumes: [{name: d, emptyDir: {}}], containers: [{name: a, image: i, \
             volumeMounts: [{name: d, mountPath: /d, subPath: sub/dir, readOnly: true, \
             mountPropagation: HostToContainer}]}]}",
        ))
        .expect("converts");
        assert_eq!(
            pod_spec(&manifest).containers[0].mounts,
            vec![Mount {
                container_path: "/d".into(),
                host_path: String::new(),
                read_only: true,
                propagation: MountPropagation::HostToContainer.into(),
                selinux_relabel: false,
                volume_name: "d".into(),
                sub_path: "sub/dir".into(),
            }]
        );
    }

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{volumes: [{name: d, hostPath: {path: /d}}], containers: [{name: a, volumeMounts: [{name: d, mountPath: /d, subPathExpr: $(POD)}]}]}",
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "not supported: expand the variables into subPath",
            ),
            (
                "{containers: [{name: a, volumeDevices: [{name: d, devicePath: /dev/xvda}]}]}",
                "spec.containers[0].volumeDevices",
                "not supported",
            ),
            (
                "{volumes: [{name: data, persistentVolumeClaim: {claimName: c}}]}",
                "spec.volumes[0].persistentVolumeClaim",
                "not supported: podstart provisions no persistent volumes",
            ),
            (
                "{volumes: [{name: data, csi: {driver: d}}]}",
                "spec.volumes[0].csi",
                "not supported: podstart takes emptyDir, configMap, secret, projected, downwardAPI and hostPath volumes",
            ),
            (
                "{volumes: [{name: t, projected: {sources: [{serviceAccountToken: {path: token}}]}}]}",
                "spec.volumes[0].projected.sources[0].serviceAccountToken",
                "not supported: podstart issues no credentials",
            ),
            (
                "{volumes: [{name: t, projected: {sources: [{clusterTrustBundle: {name: b, path: p}}]}}]}",
                "spec.volumes[0].projected.sources[0].clusterTrustBundle",
                "not supported",
            ),
            (
                "{volumes: [{name: c, configMap: {name: absent}}]}",
                "spec.volumes[0].configMap.name",
                "configmap \"absent\" not found",
            ),
            (
                "{volumes: [{name: c, secret: {secretName: tls, items: [{key: ca.crt, path: ca}]}}]}",
                "spec.volumes[0].secret.items[0].key",
                "references non-existent secret key: ca.crt",
            ),
            (
                "{volumes: [{name: c, configMap: {name: web, items: [{key: x, path: x}]}}]}",
                "spec.volumes[0].configMap.items[0].key",
                "configmap references non-existent config key: x",
            ),
            (
                "{volumes: [{name: c, configMap: {name: web, defaultMode: rw}}]}",
                "spec.volumes[0].configMap.defaultMode",
                "expected a file mode (0644, or 420), found \"rw\"",
            ),
            (
                "{volumes: [{name: c, emptyDir: {medium: HugePages}}]}",
                "spec.volumes[0].emptyDir.medium",
                "expected \"\" (the node's disk) or Memory, found \"HugePages\"",
            ),
            (
                "{volumes: [{name: c, emptyDir: {}, hostPath: {path: /x}}]}",
                "spec.volumes[0]",
                "only one volume source may be set, found emptyDir and hostPath",
            ),
            (
                "{volumes: [{name: c, hostPath: {path: /x, type: Dir}}]}",
                "spec.volumes[0].hostPath.type",
                "expected one of DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice",
            ),
            (
                "{volumes: [{name: p, projected: {sources: [{downwardAPI: {items: [{path: ip, fieldRef: {fieldPath: status.podIP}}]}}]}}]}",
                "spec.volumes[0].projected.sources[0].downwardAPI.items[0].fieldRef.fieldPath",
                "\"status.podIP\" is not a field a volume may name",
            ),
            (
                "{initContainers: [{name: a, volumeMounts: [{name: nowhere, mountPath: /c}]}]}",
                "spec.initContainers[0].volumeMounts[0].name",
                "no volume \"nowhere\" in spec.volumes",
            ),
            (
                "{volumes: [{name: d, hostPath: {path: /d, readOnly: true}}], containers: [{name: a}]}",
                "spec.volumes[0].hostPath.readOnly",
                "not supported",
            ),
            (
                "{volumes: [{name: d, hostPath: {path: /d}}, {name: d, hostPath: {path: /e}}], containers: [{name: a}]}",
                "spec.volumes[1].name",
                "volume \"d\" is declared twice",
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
