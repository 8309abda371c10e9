//! Volumes and mounts: the pod's volumes (hostPath is the one kind podstart
//! mounts; any other kind is refused once a container mounts it) and each
//! container's volumeMounts, resolved to host paths.

use super::Converter;
use super::Result;
use super::fields::{Fields, field_error};
use crate::proto::v1::{Mount, MountPropagation};

pub(super) const PROPAGATIONS: &[(&str, MountPropagation)] = &[
    ("None", MountPropagation::Private),
    ("HostToContainer", MountPropagation::HostToContainer),
    ("Bidirectional", MountPropagation::Bidirectional),
];

/// A pod volume, as far as mounts need it.
#[derive(Debug)]
pub(super) struct Volume {
    pub(super) path: String,
    pub(super) source: VolumeSource,
}

#[derive(Debug)]
pub(super) enum VolumeSource {
    HostPath(String),
    /// Any other type, by its field name (`emptyDir`, `configMap`, ...).
    Other(String),
}

impl Converter {
    pub(super) fn volume(&mut self, mut v: Fields) -> Result<()> {
        let name = v
            .string("name")?
            .ok_or_else(|| field_error(v.path_of("name"), "required"))?;
        if self.volumes.contains_key(&name) {
            return Err(field_error(
                v.path_of("name"),
                format!("volume {name:?} is declared twice"),
            ));
        }
        let path = v.path.clone();
        let source = if let Some(mut host) = v.fields("hostPath")? {
            let host_path = host.string("path")?.unwrap_or_default();
            if let Some(kind) = host.string("type")?.filter(|kind| !kind.is_empty()) {
                self.warn(
                    host.path_of("type"),
                    format!("{kind:?} is not checked: podstart mounts the host path as given"),
                );
            }
            host.finish()?;
            v.finish()?;
            VolumeSource::HostPath(host_path)
        } else {
            // Rejected only if a container mounts it; an unset source is an
            // emptyDir, as the API server would default it.
            VolumeSource::Other(v.first_key().unwrap_or("emptyDir").to_owned())
        };
        self.volumes.insert(name, Volume { path, source });
        Ok(())
    }

    pub(super) fn warn_unmounted_volumes(&mut self) {
        let unmounted: Vec<(String, String)> = self
            .volumes
            .iter()
            .filter(|(name, _)| !self.mounted.contains(*name))
            .filter_map(|(name, volume)| match &volume.source {
                VolumeSource::Other(kind) => Some((
                    volume.path.clone(),
                    format!("{kind} volume {name:?} is not mounted by any container; ignored"),
                )),
                VolumeSource::HostPath(_) => None,
            })
            .collect();
        for (path, why) in unmounted {
            self.warn(path, why);
        }
    }

    pub(super) fn mount(&mut self, mut m: Fields) -> Result<Mount> {
        if m.take("subPathExpr").is_some() {
            return Err(field_error(
                m.path_of("subPathExpr"),
                "not supported: expand the variables into subPath",
            ));
        }
        let name = m.string("name")?.unwrap_or_default();
        let volume = self.volumes.get(&name).ok_or_else(|| {
            field_error(
                m.path_of("name"),
                format!("no volume {name:?} in spec.volumes"),
            )
        })?;
        let volume_path = match &volume.source {
            VolumeSource::HostPath(path) => path.clone(),
            VolumeSource::Other(kind) => {
                return Err(field_error(
                    m.path_of("name"),
                    format!(
                        "volume {name}: only hostPath volumes are supported \
                         (podstart takes resolved host paths), not {kind}"
                    ),
                ));
            }
        };
        let sub_path = m.string("subPath")?.unwrap_or_default();
        let host_path = if sub_path.is_empty() {
            volume_path
        } else {
            format!("{}/{sub_path}", volume_path.trim_end_matches('/'))
        };
        let mount = Mount {
            container_path: m.string("mountPath")?.unwrap_or_default(),
            host_path,
            read_only: m.bool("readOnly")?.unwrap_or(false),
            propagation: m.enumeration("mountPropagation", PROPAGATIONS)?,
            selinux_relabel: false,
            ..Default::default()
        };
        m.finish()?;
        self.mounted.insert(name);
        Ok(mount)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{volumes: [{name: d, hostPath: {path: /d}}], containers: [{name: a, volumeMounts: [{name: d, mountPath: /d, subPathExpr: $(POD)}]}]}",
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "not supported",
            ),
            (
                "{containers: [{name: a, volumeDevices: [{name: d, devicePath: /dev/xvda}]}]}",
                "spec.containers[0].volumeDevices",
                "not supported",
            ),
            (
                "{volumes: [{name: cache, emptyDir: {}}], containers: [{name: a, volumeMounts: [{name: cache, mountPath: /c}]}]}",
                "spec.containers[0].volumeMounts[0].name",
                "volume cache: only hostPath volumes are supported (podstart takes resolved host paths)",
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
        assert_spec_field_errors(cases);
    }
}
