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
    let (glob, text) = (glob.to_ascii_lowercase(), text.to_ascii_lowercase());
    let mut literals = glob.split('*');
    let first = literals.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let literals: Vec<&str> = literals.collect();
    let Some((last, middle)) = literals.split_last() else {
        // No `*`: the whole text.
        return rest.is_empty();
    };
    // Each literal between two `*` at its leftmost place after the one
    // before; the last one ends the text.
    for literal in middle {
        match rest.find(literal) {
            Some(at) => rest = &rest[at + literal.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}
