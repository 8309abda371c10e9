//! The sim's idea of image references and of the registry behind PullImage: how a name is
//! normalised, which image id a name gets, and which pulls the "registry" refuses. Pure rules: no
//! state, no network.

use k8s_cri::v1::AuthConfig;

use super::error::CallError;

/// Size reported for every simulated image: 1 MiB.
pub(crate) const IMAGE_SIZE: u64 = 1 << 20;

/// Normalises a reference the simple way: `:latest` is added when it has neither tag nor digest.
/// No registry or `library/` prefix is added (`busybox` becomes `busybox:latest`).
pub(crate) fn normalise(reference: &str) -> Result<String, CallError> {
    let reference = reference.trim();
    if reference.is_empty() || reference.chars().any(char::is_whitespace) {
        return Err(CallError::InvalidImageReference {
            reference: reference.to_owned(),
        });
    }
    if reference.contains('@') || last_component(reference).contains(':') {
        Ok(reference.to_owned())
    } else {
        Ok(format!("{reference}:latest"))
    }
}

/// The image id of a normalised name: `sha256:` and 64 hex digits derived from the name, stable
/// across runs and processes (not a real content digest).
pub(crate) fn image_id(normalised: &str) -> String {
    let mut id = String::with_capacity(7 + 64);
    id.push_str("sha256:");
    for lane in 0u8..4 {
        id.push_str(&format!("{:016x}", fnv1a(lane, normalised.as_bytes())));
    }
    id
}

/// What the simulated registry answers to a pull of a normalised name: names containing
/// `does-not-exist` are unknown (NOT_FOUND, as containerd reports a missing manifest); names
/// containing `registry-down` cannot be reached (UNKNOWN, connection refused); names containing
/// `needs-auth` need a credential in `auth` — `required` (user, password) when given, any
/// otherwise. Everything else is served.
pub(crate) fn check_pull(
    normalised: &str,
    auth: Option<&AuthConfig>,
    required: Option<(&str, &str)>,
) -> Result<(), CallError> {
    if normalised.contains("does-not-exist") {
        return Err(CallError::ImageNotInRegistry {
            image: normalised.to_owned(),
        });
    }
    if normalised.contains("registry-down") {
        return Err(CallError::RegistryUnreachable {
            image: normalised.to_owned(),
            host: registry_host(normalised).to_owned(),
        });
    }
    let accepted = match required {
        None => auth.is_some_and(has_credentials),
        Some(pair) => auth.is_some_and(|a| matches_pair(a, pair)),
    };
    if normalised.contains("needs-auth") && !accepted {
        return Err(CallError::RegistryUnauthorized {
            image: normalised.to_owned(),
            host: registry_host(normalised).to_owned(),
            tag: tag_or_digest(normalised).to_owned(),
        });
    }
    Ok(())
}

fn has_credentials(auth: &AuthConfig) -> bool {
    [
        &auth.username,
        &auth.password,
        &auth.auth,
        &auth.identity_token,
        &auth.registry_token,
    ]
    .iter()
    .any(|field| !field.is_empty())
}

fn matches_pair(auth: &AuthConfig, (user, password): (&str, &str)) -> bool {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    (auth.username == user && auth.password == password) || auth.auth == basic
}

fn last_component(reference: &str) -> &str {
    reference
        .rsplit_once('/')
        .map_or(reference, |(_, last)| last)
}

fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "registry-1.docker.io",
    }
}

fn tag_or_digest(normalised: &str) -> &str {
    if let Some((_, digest)) = normalised.split_once('@') {
        return digest;
    }
    last_component(normalised)
        .rsplit_once(':')
        .map_or("latest", |(_, tag)| tag)
}

/// FNV-1a (64 bit) over a lane byte and the input; four lanes give 256 bits of id.
fn fnv1a(lane: u8, bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    std::iter::once(lane)
        .chain(bytes.iter().copied())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn normalise_adds_latest_only_without_tag_or_digest() {
        assert_eq!(normalise("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalise("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalise("localhost:5000/lab/busybox").unwrap(),
            "localhost:5000/lab/busybox:latest"
        );
        assert_eq!(
            normalise("localhost/lab/busybox@sha256:abcd").unwrap(),
            "localhost/lab/busybox@sha256:abcd"
        );
        assert!(normalise("").is_err());
        assert!(normalise("bad name").is_err());
    }

    #[test]
    fn image_id_is_stable_and_distinct() {
        let id = image_id("busybox:latest");
        assert_eq!(id, image_id("busybox:latest"));
        assert_ne!(id, image_id("busybox:1.36"));
        let hex = id.strip_prefix("sha256:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn missing_image_is_not_found() {
        let err = check_pull("localhost/does-not-exist:latest", None, None).unwrap_err();
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().starts_with(
                "failed to pull and unpack image \"localhost/does-not-exist:latest\":"
            )
        );
        assert!(status.message().ends_with(": not found"));
    }

    #[test]
    fn private_image_needs_any_credential() {
        let err = check_pull("127.0.0.1:5001/needs-auth/app:v1", None, None).unwrap_err();
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), Code::Unknown);
        assert!(status.message().contains(
            "pulling from host 127.0.0.1:5001 failed with status code [manifests v1]: 401 Unauthorized"
        ));
        let empty = AuthConfig::default();
        assert!(check_pull("needs-auth:latest", Some(&empty), None).is_err());
        let basic = AuthConfig {
            username: "lab".into(),
            password: "secret".into(),
            ..AuthConfig::default()
        };
        assert!(check_pull("needs-auth:latest", Some(&basic), None).is_ok());
        assert!(check_pull("busybox:latest", None, None).is_ok());
    }

    #[test]
    fn private_image_with_a_required_credential() {
        let required = Some(("lab", "secret"));
        let wrong = AuthConfig {
            username: "lab".into(),
            password: "nope".into(),
            ..AuthConfig::default()
        };
        assert!(check_pull("needs-auth:latest", Some(&wrong), required).is_err());
        let right = AuthConfig {
            username: "lab".into(),
            password: "secret".into(),
            ..AuthConfig::default()
        };
        assert!(check_pull("needs-auth:latest", Some(&right), required).is_ok());
        let as_auth = AuthConfig {
            auth: "bGFiOnNlY3JldA==".into(),
            ..AuthConfig::default()
        };
        assert!(check_pull("needs-auth:latest", Some(&as_auth), required).is_ok());
    }

    #[test]
    fn unreachable_registry_is_connection_refused() {
        let err = check_pull("10.0.0.1:5000/registry-down/x:1", None, None).unwrap_err();
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), Code::Unknown);
        assert!(status.message().contains("connect: connection refused"));
    }
}
