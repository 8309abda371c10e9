//! How refusals name things, as Kubernetes' Pod Security messages do
//! (`container "a"`, `containers "a", "b"`), bounded: a list names at most
//! [`NAMED_MAX`] items, then counts the rest (`(and 120 other containers)`),
//! and every echoed value is quoted and cut to
//! [`ECHO_MAX`](crate::spec::validate::ECHO_MAX) characters.
use crate::spec::validate::echo;

/// Items a list names before it counts the rest.
pub(super) const NAMED_MAX: usize = 8;

/// `one` for a count of 1, else `many`.
pub(super) fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}

/// `items` joined by `, `, at most [`NAMED_MAX`] of them, then
/// `(and N other <many>)`.
pub(super) fn joined(items: &[String], many: &str) -> String {
    let mut out = items
        .iter()
        .take(NAMED_MAX)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED_MAX {
        out.push_str(&format!(" (and {} other {many})", items.len() - NAMED_MAX));
    }
    out
}

/// `<one> a` or `<many> a, b, …`: the noun by the count, then the items.
pub(super) fn listed(one: &'static str, many: &'static str, items: &[String]) -> String {
    format!("{} {}", plural(items.len(), one, many), joined(items, many))
}

/// Each of `items` quoted (and cut) as a message shows it.
pub(super) fn quoted<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    items.into_iter().map(echo).collect()
}

/// `container "a"` or `containers "a", "b"`.
pub(super) fn containers(names: &[&str]) -> String {
    listed("container", "containers", &quoted(names.iter().copied()))
}

/// `volume "a"` or `volumes "a", "b"`.
pub(super) fn volumes(names: &[&str]) -> String {
    listed("volume", "volumes", &quoted(names.iter().copied()))
}
