//! Step 1 of a container start: make sure its image is on the node — the
//! pull policy (with the `:latest` default), ImageStatus before pulling for
//! IfNotPresent/Never, PullImage with the matching registry credentials.
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::{ContainerRef, StartError, Starter, pod::PodContext};
use crate::cri::CriError;
use crate::proto::v1::{
    Container, ImageInfo, PullPolicy, RegistryCredential, StartEvent, Step, start_event::Payload,
};
use crate::spec::image::{effective_pull_policy, parse_image, with_default_tag};

impl Starter {
    /// Returns the image reference to create the container from.
    pub(super) async fn ensure_image(
        &self,
        ctx: &PodContext,
        cref: &ContainerRef,
        c: &Container,
    ) -> Result<String, StartError> {
        let cri = &self.inner.cri;
        let image = with_default_tag(&c.image);
        let policy = effective_pull_policy(c.image_pull_policy(), &c.image);
        let started = Instant::now();

        if policy != PullPolicy::Always {
            match cri.image_status(&image).await {
                Err(source) => {
                    let err = StartError::ImageInspect {
                        container: cref.name.clone(),
                        image: image.clone(),
                        source,
                    };
                    ctx.sink
                        .emit(
                            StartEvent::at(Step::Image, "InspectFailed", err.to_string())
                                .of(cref)
                                .took(started.elapsed())
                                .warning(),
                        )
                        .await;
                    return Err(err);
                }
                Ok(Some(present)) => {
                    ctx.sink
                        .emit(
                            StartEvent::at(
                                Step::Image,
                                "Pulled",
                                format!("Container image {image:?} already present on machine"),
                            )
                            .of(cref)
                            .took(started.elapsed())
                            .with(Payload::Image(ImageInfo {
                                image: image.clone(),
                                image_ref: present.id.clone(),
                                size_bytes: present.size,
                                already_present: true,
                            })),
                        )
                        .await;
                    return Ok(present.id);
                }
                Ok(None) if policy == PullPolicy::Never => {
                    let err = StartError::ImageNeverPull {
                        container: cref.name.clone(),
                        image: image.clone(),
                    };
                    ctx.sink
                        .emit(
                            StartEvent::at(Step::Image, "ErrImageNeverPull", err.to_string())
                                .of(cref)
                                .took(started.elapsed())
                                .warning(),
                        )
                        .await;
                    return Err(err);
                }
                Ok(None) => {}
            }
        }

        ctx.sink
            .emit(
                StartEvent::at(Step::Image, "Pulling", format!("Pulling image {image:?}")).of(cref),
            )
            .await;
        let pull_started = Instant::now();
        match self.pull_with_credentials(ctx, &image).await {
            Ok(image_ref) => {
                let pulled_in = pull_started.elapsed();
                // Size is best effort, as in the kubelet.
                let size = cri
                    .image_status(&image)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |i| i.size);
                self.inner.metrics.image_pulled(size, started.elapsed());
                ctx.sink
                    .emit(
                        StartEvent::at(
                            Step::Image,
                            "Pulled",
                            format!(
                                "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {size} bytes.",
                                go_duration(pulled_in),
                                go_duration(started.elapsed()),
                            ),
                        )
                        .of(cref)
                        .took(started.elapsed())
                        .with(Payload::Image(ImageInfo {
                            image: image.clone(),
                            image_ref: image_ref.clone(),
                            size_bytes: size,
                            already_present: false,
                        })),
                    )
                    .await;
                Ok(image_ref)
            }
            Err(source) => {
                let err = StartError::ImagePull {
                    container: cref.name.clone(),
                    image: image.clone(),
                    source,
                };
                ctx.sink
                    .emit(
                        StartEvent::at(Step::Image, "Failed", err.to_string())
                            .of(cref)
                            .took(started.elapsed())
                            .warning(),
                    )
                    .await;
                Err(err)
            }
        }
    }

    /// Pulls with each matching credential in turn until one works (the
    /// kubelet's keyring order); anonymously when none matches.
    async fn pull_with_credentials(
        &self,
        ctx: &PodContext,
        image: &str,
    ) -> Result<String, CriError> {
        let cri = &self.inner.cri;
        let matching = matching_credentials(image, &ctx.credentials);
        if matching.is_empty() {
            return cri
                .pull_image(image, None, Some(ctx.sandbox_config.clone()))
                .await;
        }
        let mut last = None;
        for cred in matching {
            match cri
                .pull_image(
                    image,
                    Some(auth_config(cred)),
                    Some(ctx.sandbox_config.clone()),
                )
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(CriError::InvalidResponse {
            op: "pull_image",
            missing: "result",
        }))
    }
}

fn auth_config(c: &RegistryCredential) -> cri::AuthConfig {
    // containerd 1.6 parses server_address as a URL: a bare "host:port"
    // fails to parse there, so a scheme is added when none is given.
    let server_address = if c.server.is_empty() || c.server.contains("://") {
        c.server.clone()
    } else {
        format!("https://{}", c.server)
    };
    cri::AuthConfig {
        username: c.username.clone(),
        password: c.password.clone(),
        auth: c.auth.clone(),
        server_address,
        identity_token: c.identity_token.clone(),
        registry_token: c.registry_token.clone(),
    }
}

/// Credentials whose server matches the image's registry (and path prefix),
/// most specific first. An empty server matches every registry.
pub(super) fn matching_credentials<'a>(
    image: &str,
    creds: &'a [RegistryCredential],
) -> Vec<&'a RegistryCredential> {
    let Ok(parsed) = parse_image(image) else {
        return Vec::new();
    };
    let target = format!("{}/{}", parsed.registry, parsed.repository);
    let mut found: Vec<(usize, &RegistryCredential)> = creds
        .iter()
        .filter_map(|c| {
            let server = normalise_server(&c.server);
            if server.is_empty() {
                return Some((0, c));
            }
            let host_only = !server.contains('/');
            let matches = if host_only {
                server == parsed.registry
            } else {
                target == server || target.starts_with(&format!("{server}/"))
            };
            matches.then_some((server.len(), c))
        })
        .collect();
    found.sort_by_key(|(specificity, _)| std::cmp::Reverse(*specificity));
    found.into_iter().map(|(_, c)| c).collect()
}

fn normalise_server(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let s = s.strip_suffix("/v1").or(s.strip_suffix("/v2")).unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// A duration the way Go's `%v` prints it in kubelet messages
/// (`512.3ms`, `1.204s`).
pub(super) fn go_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.3}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(server: &str, user: &str) -> RegistryCredential {
        RegistryCredential {
            server: server.into(),
            username: user.into(),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_match_registry_most_specific_first() {
        let creds = vec![
            cred("127.0.0.1:5402", "host"),
            cred("127.0.0.1:5402/team", "team"),
            cred("https://index.docker.io/v1/", "hub"),
            cred("other.example", "other"),
        ];
        let users = |image: &str| -> Vec<String> {
            matching_credentials(image, &creds)
                .into_iter()
                .map(|c| c.username.clone())
                .collect()
        };
        assert_eq!(users("127.0.0.1:5402/team/app:1"), vec!["team", "host"]);
        assert_eq!(users("127.0.0.1:5402/else/app:1"), vec!["host"]);
        assert_eq!(users("busybox"), vec!["hub"]);
        assert!(users("quay.io/x/y").is_empty());
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.500ms");
        assert_eq!(go_duration(Duration::from_millis(2500)), "2.500s");
        assert_eq!(go_duration(Duration::from_micros(20)), "20µs");
    }
}
