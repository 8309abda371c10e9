//! Which registry credentials apply to an image, in the order the kubelet's
//! keyring tries them: each credential's `server` is a pattern (scheme
//! optional, host glob per label, port, path prefix), matched against the
//! image's registry and repository; the most specific pattern comes first
//! (reverse lexical order of the normalised patterns, as the kubelet sorts
//! its index), credentials under one pattern keep the order they were given,
//! and a credential without a server matches no registry (request
//! validation refuses one; a credential is only ever offered to the registry
//! it names).
//!
//! Pure rules over borrowed credentials: nothing here logs, formats or keeps
//! a secret.
use crate::proto::v1::RegistryCredential;
use crate::spec::image::{DEFAULT_REGISTRY, ImageRef};

/// Spellings of Docker Hub in credentials (Docker's config.json uses
/// `https://index.docker.io/v1/`).
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io", "docker.io"];

/// A credential's `server`, normalised to `host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPattern {
    host: String,
    port: Option<String>,
    path: String,
}

impl ServerPattern {
    /// Normalises a `server` field; `None` when it is empty (matches all).
    pub fn parse(server: &str) -> Option<ServerPattern> {
        let s = server.trim();
        let s = ["https://", "http://"]
            .iter()
            .find_map(|scheme| {
                s.get(..scheme.len())
                    .filter(|head| head.eq_ignore_ascii_case(scheme))
                    .map(|_| &s[scheme.len()..])
            })
            .unwrap_or(s)
            .trim_end_matches('/');
        let s = s
            .strip_suffix("/v1")
            .or_else(|| s.strip_suffix("/v2"))
            .unwrap_or(s);
        if s.is_empty() {
            return None;
        }
        let (hostport, path) = s.split_once('/').unwrap_or((s, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h.to_string(), Some(p.to_string()))
            }
            _ => (hostport.to_string(), None),
        };
        let host = host.to_ascii_lowercase();
        let host = if DOCKER_HUB_ALIASES.contains(&host.as_str()) && port.is_none() {
            DEFAULT_REGISTRY.to_string()
        } else {
            host
        };
        Some(ServerPattern {
            host,
            port,
            path: path.trim_matches('/').to_string(),
        })
    }

    /// The sort key: `host[:port][/path]`.
    fn key(&self) -> String {
        let mut k = self.host.clone();
        if let Some(p) = &self.port {
            k.push(':');
            k.push_str(p);
        }
        if !self.path.is_empty() {
            k.push('/');
            k.push_str(&self.path);
        }
        k
    }

    /// True when the pattern covers the image: same number of host labels,
    /// each matching its glob; same port (none on both sides counts as
    /// equal); the path a prefix of the repository on `/` boundaries.
    pub fn matches(&self, image: &ImageRef) -> bool {
        let (image_host, image_port) = match image.registry.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h.to_ascii_lowercase(), Some(p)),
            _ => (image.registry.to_ascii_lowercase(), None),
        };
        if self.port.as_deref() != image_port {
            return false;
        }
        let pattern_labels: Vec<&str> = self.host.split('.').collect();
        let host_labels: Vec<&str> = image_host.split('.').collect();
        if pattern_labels.len() != host_labels.len()
            || !pattern_labels
                .iter()
                .zip(&host_labels)
                .all(|(p, h)| glob_match(p, h))
        {
            return false;
        }
        self.path.is_empty()
            || image.repository == self.path
            || image
                .repository
                .strip_prefix(&self.path)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The credentials that apply to `image`, most specific first.
pub fn lookup<'a>(
    image: &ImageRef,
    creds: &'a [RegistryCredential],
) -> Vec<&'a RegistryCredential> {
    let mut found: Vec<(String, &RegistryCredential)> = creds
        .iter()
        .filter_map(|c| {
            let p = ServerPattern::parse(&c.server)?;
            p.matches(image).then(|| (p.key(), c))
        })
        .collect();
    // Stable: credentials under one pattern keep their order.
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, c)| c).collect()
}

/// `*` matches any run of characters inside one label.
fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob_match(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::image::parse_image;

    fn cred(server: &str, user: &str) -> RegistryCredential {
        RegistryCredential {
            server: server.into(),
            username: user.into(),
            ..Default::default()
        }
    }

    #[test]
    fn credential_matching_table() {
        let creds = vec![
            cred("127.0.0.1:5402", "host"),
            cred("https://127.0.0.1:5402/team/", "team"),
            cred("127.0.0.1:5402/team", "team-second"),
            cred("https://index.docker.io/v1/", "hub"),
            cred("*.example.com", "wild"),
            cred("reg.example.com", "exact"),
            cred("reg.example.com:5000", "port"),
            cred("", "no-server"),
            cred("https://", "scheme-only"),
            cred("other.example", "other"),
        ];
        let table: &[(&str, &[&str])] = &[
            // Most specific path first; equal patterns keep their order.
            (
                "127.0.0.1:5402/team/app:1",
                &["team", "team-second", "host"],
            ),
            ("127.0.0.1:5402/teams/app:1", &["host"]),
            ("127.0.0.1:5402/else/app:1", &["host"]),
            // A different port is a different registry; a credential
            // without a server applies nowhere.
            ("127.0.0.1:5400/team/app:1", &[]),
            // Docker Hub, however it is spelled.
            ("busybox", &["hub"]),
            ("docker.io/library/busybox:1", &["hub"]),
            // Globs cover one label; exact names sort before globs.
            ("reg.example.com/x/y:1", &["exact", "wild"]),
            ("a.b.example.com/x/y:1", &[]),
            ("reg.example.com:5000/x:1", &["port"]),
            ("quay.io/x/y", &[]),
        ];
        for (image, want) in table {
            let parsed = parse_image(image).unwrap();
            let got: Vec<&str> = lookup(&parsed, &creds)
                .into_iter()
                .map(|c| c.username.as_str())
                .collect();
            assert_eq!(&got, want, "{image}");
        }
    }

    #[test]
    fn patterns_normalise() {
        let p = ServerPattern::parse("HTTPS://Reg.Example.com:443/v2/").unwrap();
        assert_eq!(p.key(), "reg.example.com:443");
        assert_eq!(ServerPattern::parse("  "), None);
        assert_eq!(
            ServerPattern::parse("index.docker.io").unwrap().key(),
            "docker.io"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "abc"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abd"));
        assert!(glob_match("*.x", "*.x"));
    }
}
