//! podstart's own check, at every level: each image comes from a registry
//! the grant allows (`Allowances::registries`, globs; none listed allows
//! any).
use std::collections::BTreeSet;

use super::Allowances;
use super::subject::{Subject, Violation};
use super::words::{containers, listed, plural, quoted};
use crate::spec::image::parse_image;

/// Every image's registry matches one of the grant's globs: its host (the
/// reference's registry without its port; `docker.io` for names without
/// one), or the registry as written, port included.
pub(super) fn registries(s: &Subject<'_>, allow: &Allowances) -> Option<Violation> {
    if allow.registries.is_empty() {
        return None;
    }
    let allowed = |candidates: [&str; 2]| {
        allow
            .registries
            .iter()
            .any(|g| candidates.iter().any(|c| glob_match(g, c)))
    };
    let mut bad = Vec::new();
    let mut refused = BTreeSet::new();
    let mut invalid = Vec::new();
    for c in s.containers() {
        match parse_image(&c.image) {
            Ok(r) if allowed([r.registry_host(), r.registry.as_str()]) => {}
            Ok(r) => {
                bad.push(c.name.as_str());
                refused.insert(r.registry.clone());
            }
            Err(_) => invalid.push(c.name.as_str()),
        }
    }
    let mut details = Vec::new();
    if !bad.is_empty() {
        details.push(format!(
            "{} {} {}",
            containers(&bad),
            plural(bad.len(), "uses", "use"),
            listed(
                "registry",
                "registries",
                &quoted(refused.iter().map(String::as_str))
            ),
        ));
    }
    if !invalid.is_empty() {
        details.push(format!(
            "{} {} no valid image reference",
            containers(&invalid),
            plural(invalid.len(), "has", "have"),
        ));
    }
    if details.is_empty() {
        return None;
    }
    Violation::new("disallowed registries", details.join("; "))
}

/// Whether `text` matches `glob`, ASCII case aside: `*` stands for any run
/// of characters (none included), every other character for itself.
pub(super) fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t) = (glob.as_bytes(), text.as_bytes());
    let (mut gi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi].eq_ignore_ascii_case(&t[ti]) {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&b| b == b'*')
}
