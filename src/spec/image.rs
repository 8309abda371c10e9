//! Image references: parsing with Docker's normalisation rules (the grammar of
//! distribution/reference that the kubelet and containerd use), the `:latest`
//! default tag the kubelet applies before CRI calls, and the default pull
//! policy Kubernetes derives from the tag.

use crate::proto::v1::PullPolicy;

/// Registry a name without a domain component belongs to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Legacy spelling of [`DEFAULT_REGISTRY`], normalised to it.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Prefix of single-component repositories on the default registry.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag the kubelet applies when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest allowed repository name (domain included), as in Docker.
const MAX_NAME_LEN: usize = 255;
/// Longest allowed tag.
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry domain, with its port if any; `docker.io` when the name has none.
    pub registry: String,
    /// Repository path inside the registry; `library/<name>` for docker.io short names.
    pub repository: String,
    /// Tag, as written.
    pub tag: Option<String>,
    /// Digest `algorithm:hex`, as written.
    pub digest: Option<String>,
}

impl ImageRef {
    /// The registry's host name without its port (and without the brackets
    /// of an IPv6 literal), as containerd records it in its
    /// `containerd.io/distribution.source.<host>` content labels.
    pub fn registry_host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.split(':').next().unwrap_or(r)
    }

    /// `registry/repository`, the fully qualified name without tag or digest.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// An image reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {image:?}: {reason}")]
pub struct InvalidImageName {
    /// The reference as given.
    pub image: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses an image reference with Docker's normalisation rules.
///
/// The first path component is the registry domain when it contains `.` or
/// `:`, is `localhost`, or has upper-case letters; otherwise the registry is
/// `docker.io`, and a single-component name gets the `library/` prefix.
pub fn parse_image(s: &str) -> Result<ImageRef, InvalidImageName> {
    let fail = |reason: &str| InvalidImageName {
        image: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() {
        return Err(fail("reference is empty"));
    }
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(fail("cannot specify 64-byte hexadecimal strings"));
    }

    let (domain, remainder) = split_domain(s);
    let (name_and_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder, None),
    };
    let (path, tag) = match name_and_tag.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name_and_tag, None),
    };

    if domain != DEFAULT_REGISTRY && !valid_domain(domain) {
        return Err(fail("invalid reference format: invalid registry domain"));
    }
    if path.to_lowercase() != path {
        return Err(fail("repository name must be lowercase"));
    }
    if !valid_path(path) {
        return Err(fail("invalid reference format: invalid repository name"));
    }
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(fail(
            "invalid tag: must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
        ));
    }
    if let Some(d) = digest {
        check_digest(d).map_err(fail)?;
    }

    let repository = if domain == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_string()
    };
    if domain.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(fail("repository name must not be more than 255 characters"));
    }
    Ok(ImageRef {
        registry: domain.to_string(),
        repository,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// Appends `:latest` when the reference has neither tag nor digest, keeping
/// the original spelling otherwise (the kubelet's `applyDefaultImageTag`: no
/// `docker.io/` qualification, so the CRI stays agnostic of default hosts).
/// An unparseable reference is returned unchanged; validation rejects it.
pub fn with_default_tag(s: &str) -> String {
    match parse_image(s) {
        Ok(r) if r.tag.is_none() && r.digest.is_none() => format!("{s}:{DEFAULT_TAG}"),
        _ => s.to_string(),
    }
}

/// The pull policy to use: an explicit policy as given; UNSPECIFIED becomes
/// ALWAYS when the tag is `latest` (no tag and no digest counts as `latest`),
/// else IF_NOT_PRESENT — a digest counts as a tag (Kubernetes'
/// `SetDefaults_Container`). An unparseable reference gets IF_NOT_PRESENT, as
/// in Kubernetes, where its tag reads as empty.
pub fn effective_pull_policy(policy: PullPolicy, image: &str) -> PullPolicy {
    if policy != PullPolicy::Unspecified {
        return policy;
    }
    match parse_image(image) {
        Ok(r) => match (r.tag.as_deref(), r.digest.as_deref()) {
            (Some(DEFAULT_TAG), _) | (None, None) => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        },
        Err(_) => PullPolicy::IfNotPresent,
    }
}

/// Splits `s` into (domain, remainder) like Docker's `splitDockerDomain`.
fn split_domain(s: &str) -> (&str, &str) {
    match s.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            if first == LEGACY_DEFAULT_REGISTRY {
                (DEFAULT_REGISTRY, rest)
            } else {
                (first, rest)
            }
        }
        _ => (DEFAULT_REGISTRY, s),
    }
}

/// `host [':' port]`, host being a domain name or a bracketed IPv6 literal.
fn valid_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => {
                let ok = !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
                match after {
                    "" => (ok, None),
                    _ => match after.strip_prefix(':') {
                        Some(p) => (ok, Some(p)),
                        None => (false, None),
                    },
                }
            }
            None => (false, None),
        }
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        (host.split('.').all(valid_domain_component), port)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// `component ('/' component)*`
fn valid_path(p: &str) -> bool {
    p.split('/').all(valid_path_component)
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `[._]|__|-+`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        // A run of alphanumerics.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator, then another run must follow.
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let sep_ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !sep_ok || i == b.len() {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

/// `algorithm ':' hex`: the grammar, then the digest rules for the
/// algorithms registries support (lower-case hex of the algorithm's length).
fn check_digest(d: &str) -> Result<(), &'static str> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err("invalid digest: missing ':'");
    };
    let algo_ok = !algo.is_empty()
        && algo.split(['+', '.', '-', '_']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        });
    if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid digest format");
    }
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != want || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("invalid digest: wrong length or not lower-case hex");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
