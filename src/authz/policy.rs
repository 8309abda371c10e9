//! The authorization policy (`--authz-policy FILE`), parsed and decided.
//! Pure: text in, rules and grants out.
//!
//! ```yaml
//! rules:
//!   - identities: ["spiffe://cluster.local/ns/sched/sa/orchestrator", "unix:uid=0"]
//!     namespaces: ["team-*", "default"]
//!     verbs: [start, stop, read, watch]
//!     podSecurity: baseline          # privileged | baseline | restricted
//!     hostPaths: ["/var/lib/data"]   # host path prefixes allowed at baseline
//!     hostPorts: ["8080", "9000-9100"]
//!     registries: ["registry.example.com", "*.corp"]
//! ```
//!
//! Identities, namespaces and registries are globs (`glob.rs`); a caller
//! with no identity (plaintext TCP) matches only the literal `anonymous`. A rule
//! applies to a caller when one of the caller's identities matches one of
//! its identities; it covers a request when it also names the verb and
//! matches the namespace. The first rule (in file order) that covers a
//! request grants it, and only that rule's level and allowances apply:
//! rules are never merged, so what a start may do is read off one rule.
//! Put narrow, more permissive rules before broad ones.
use std::fmt;

use serde_json::Value;

use crate::admission::{Allowances, Grant, Level, PortRange};

/// The identity that names callers without one (`--insecure-tcp`); only
/// this exact entry matches them, so `*` never admits them.
pub const ANONYMOUS: &str = "anonymous";

/// What a request asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// StartPod and StartContainer.
    Start,
    /// StopPod.
    Stop,
    /// GetPod and ListPods.
    Read,
    /// WatchEvents.
    Watch,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Start, Verb::Stop, Verb::Read, Verb::Watch];

    /// The verb as the policy spells it (and the metric's label).
    pub fn name(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Read => "read",
            Verb::Watch => "watch",
        }
    }

    fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.name() == s)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Identity globs; one of the caller's identities must match one.
    pub identities: Vec<String>,
    /// Namespace globs.
    pub namespaces: Vec<String>,
    pub verbs: Vec<Verb>,
    /// `podSecurity`; baseline when not given.
    pub level: Level,
    /// `hostPaths`, `hostPorts`, `registries`; `registries` empty means the
    /// rule names none (`--allowed-registries` then applies).
    pub allow: Allowances,
}

impl Rule {
    /// Whether the rule names one of `identities`. A caller without any
    /// (plaintext TCP) is named only by the exact identity `anonymous`,
    /// never by a glob.
    pub fn applies_to(&self, identities: &[String]) -> bool {
        if identities.is_empty() {
            return self.identities.iter().any(|p| p == ANONYMOUS);
        }
        identities
            .iter()
            .any(|id| super::glob::any(&self.identities, id))
    }

    /// Whether the rule grants `verb` on `namespace` to `identities`.
    pub fn covers(&self, identities: &[String], verb: Verb, namespace: &str) -> bool {
        self.verbs.contains(&verb)
            && super::glob::any(&self.namespaces, namespace)
            && self.applies_to(identities)
    }

    /// The grant this rule gives, named `name`; `registries` stands in
    /// when the rule names none.
    pub fn grant(&self, name: String, registries: &[String]) -> Grant {
        let mut allow = self.allow.clone();
        if allow.registries.is_empty() {
            allow.registries = registries.to_vec();
        }
        Grant {
            level: self.level,
            allow,
            rule: name,
        }
    }
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Where it came from, for grants and logs (the file's path).
    pub source: String,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The first rule covering the request, with its index.
    pub fn rule_for(
        &self,
        identities: &[String],
        verb: Verb,
        namespace: &str,
    ) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.covers(identities, verb, namespace))
    }

    /// The grant for the request, if a rule covers it. The rule is named
    /// as the policy's errors name it: `rules[2] of /etc/podstart/policy.yaml`.
    pub fn grant(
        &self,
        identities: &[String],
        verb: Verb,
        namespace: &str,
        registries: &[String],
    ) -> Option<Grant> {
        let (i, rule) = self.rule_for(identities, verb, namespace)?;
        Some(rule.grant(format!("rules[{i}] of {}", self.source), registries))
    }

    /// Whether some rule gives `identities` the verb in some namespace.
    pub fn holds_anywhere(&self, identities: &[String], verb: Verb) -> bool {
        self.rules
            .iter()
            .any(|r| r.verbs.contains(&verb) && r.applies_to(identities))
    }

    /// Parses a policy; `source` names it in errors and grants.
    pub fn parse(text: &str, source: &str) -> Result<Policy, PolicyError> {
        let invalid = |e: Bad| PolicyError::Invalid {
            file: source.to_string(),
            path: e.path,
            message: e.message,
        };
        let docs = documents(text).map_err(|e| PolicyError::Yaml {
            file: source.to_string(),
            error: e.to_string(),
        })?;
        let doc = match docs.as_slice() {
            [doc] => doc,
            [] => return Err(invalid(bad("(document)", "empty: give `rules:`"))),
            _ => {
                return Err(invalid(bad(
                    "(document)",
                    "one YAML document expected, found several",
                )));
            }
        };
        let entries = mapping(doc, "(document)").map_err(invalid)?;
        let mut rules = None;
        for (key, value) in entries {
            match key.as_str() {
                "rules" => rules = Some(parse_rules(value).map_err(invalid)?),
                other => {
                    return Err(invalid(bad(
                        other,
                        "unknown key (the policy has only `rules`)",
                    )));
                }
            }
        }
        let rules = rules.ok_or_else(|| invalid(bad("rules", "missing")))?;
        Ok(Policy {
            source: source.to_string(),
            rules,
        })
    }
}

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read authorization policy {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("authorization policy {file}: {error}")]
    Yaml { file: String, error: String },
    #[error("authorization policy {file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

/// The non-empty documents of `text`. YAML 1.2 core schema (only
/// `true`/`false` are booleans; `0755` stays a string), duplicate keys and
/// application tags are errors, and errors carry the line and column but
/// no copy of the text.
fn documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        reject_unsupported_tags: true,
        with_snippet: false,
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// A bad value at a path of the document.
#[derive(Debug)]
struct Bad {
    path: String,
    message: String,
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        path: path.into(),
        message: message.into(),
    }
}

/// The keys a rule may have.
const RULE_KEYS: &str =
    "identities, namespaces, verbs, podSecurity, hostPaths, hostPorts, registries";

/// A mapping's entries.
fn mapping<'a>(value: &'a Value, path: &str) -> Result<Vec<(String, &'a Value)>, Bad> {
    let Value::Object(entries) = value else {
        return Err(bad(path, format!("must be a mapping, not {}", kind(value))));
    };
    Ok(entries.iter().map(|(k, v)| (k.clone(), v)).collect())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn parse_rules(value: &Value) -> Result<Vec<Rule>, Bad> {
    let Value::Array(items) = value else {
        return Err(bad("rules", format!("must be a list, not {}", kind(value))));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_rule(&format!("rules[{i}]"), item))
        .collect()
}

fn parse_rule(path: &str, value: &Value) -> Result<Rule, Bad> {
    let mut identities = None;
    let mut namespaces = None;
    let mut verbs = None;
    let mut level = Level::Baseline;
    let mut allow = Allowances::default();
    for (key, value) in mapping(value, path)? {
        let at = format!("{path}.{key}");
        // An optional key left empty (`hostPaths:`) is as if absent.
        let optional = value.is_null();
        match key.as_str() {
            "identities" => identities = Some(patterns(&at, value)?),
            "namespaces" => namespaces = Some(patterns(&at, value)?),
            "verbs" => {
                let names = strings(&at, value)?;
                let mut parsed = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let verb = Verb::parse(name).ok_or_else(|| {
                        bad(
                            format!("{at}[{i}]"),
                            format!("unknown verb {name:?} (one of start, stop, read, watch)"),
                        )
                    })?;
                    if !parsed.contains(&verb) {
                        parsed.push(verb);
                    }
                }
                verbs = Some(parsed);
            }
            "podSecurity" if !optional => level = parse_level(&at, value)?,
            "hostPaths" if !optional => {
                allow.host_path_prefixes = strings(&at, value)?
                    .iter()
                    .enumerate()
                    .map(|(i, p)| host_path(&format!("{at}[{i}]"), p))
                    .collect::<Result<_, _>>()?;
            }
            "hostPorts" if !optional => allow.host_ports = port_ranges(&at, value)?,
            "registries" if !optional => {
                allow.registries = patterns(&at, value)?;
                for (i, r) in allow.registries.iter().enumerate() {
                    check_registry(r).map_err(|m| bad(format!("{at}[{i}]"), m))?;
                }
            }
            "podSecurity" | "hostPaths" | "hostPorts" | "registries" => {}
            _ => {
                return Err(bad(at, format!("unknown key (one of {RULE_KEYS})")));
            }
        }
    }
    let missing = |key: &str| bad(format!("{path}.{key}"), "missing");
    Ok(Rule {
        identities: identities.ok_or_else(|| missing("identities"))?,
        namespaces: namespaces.ok_or_else(|| missing("namespaces"))?,
        verbs: verbs.ok_or_else(|| missing("verbs"))?,
        level,
        allow,
    })
}

/// A non-empty list of strings.
fn strings(path: &str, value: &Value) -> Result<Vec<String>, Bad> {
    let Value::Array(items) = value else {
        return Err(bad(
            path,
            format!("must be a list of strings, not {}", kind(value)),
        ));
    };
    if items.is_empty() {
        return Err(bad(path, "must not be empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad(
                format!("{path}[{i}]"),
                format!("must be a string, not {}", kind(other)),
            )),
        })
        .collect()
}

/// A non-empty list of globs, none of them empty.
fn patterns(path: &str, value: &Value) -> Result<Vec<String>, Bad> {
    let list = strings(path, value)?;
    if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
        return Err(bad(format!("{path}[{i}]"), "must not be empty"));
    }
    Ok(list)
}

fn parse_level(path: &str, value: &Value) -> Result<Level, Bad> {
    let unknown = |shown: String| {
        bad(
            path,
            format!("unknown level {shown} (one of privileged, baseline, restricted)"),
        )
    };
    match value.as_str() {
        Some("privileged") => Ok(Level::Privileged),
        Some("baseline") => Ok(Level::Baseline),
        Some("restricted") => Ok(Level::Restricted),
        Some(other) => Err(unknown(format!("{other:?}"))),
        None => Err(unknown(kind(value).to_string())),
    }
}

/// An absolute host path prefix, without `..` or a trailing `/` (save
/// `/` itself).
fn host_path(path: &str, prefix: &str) -> Result<String, Bad> {
    if !prefix.starts_with('/') {
        return Err(bad(path, format!("{prefix:?} is not an absolute path")));
    }
    if prefix.split('/').any(|part| part == "..") {
        return Err(bad(path, format!("{prefix:?} must not contain `..`")));
    }
    if prefix.contains('\0') {
        return Err(bad(path, "must not contain NUL"));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// Ports as `8080`, `"8080"` or `"9000-9100"`.
fn port_ranges(path: &str, value: &Value) -> Result<Vec<PortRange>, Bad> {
    let Value::Array(items) = value else {
        return Err(bad(path, format!("must be a list, not {}", kind(value))));
    };
    if items.is_empty() {
        return Err(bad(path, "must not be empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            match item {
                Value::Number(n) => {
                    let p = port(&n.to_string()).map_err(|m| bad(&at, m))?;
                    Ok(PortRange { first: p, last: p })
                }
                Value::String(s) => port_range(s).map_err(|m| bad(&at, m)),
                other => Err(bad(
                    at,
                    format!(
                        "must be a port or a range (\"9000-9100\"), not {}",
                        kind(other)
                    ),
                )),
            }
        })
        .collect()
}

fn port_range(text: &str) -> Result<PortRange, String> {
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a.trim())?, port(b.trim())?),
        None => {
            let p = port(text.trim())?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("{text:?}: the first port is above the last"));
    }
    Ok(PortRange { first, last })
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("{text:?} is not a port (1-65535)")),
    }
}

/// A registry glob names a host (and port), never a path.
pub fn check_registry(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.contains('/') || pattern.chars().any(char::is_whitespace) {
        return Err(format!(
            "{pattern:?} is not a registry host (as `registry.example.com` or `*.corp`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/podstart/policy.yaml";

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::parse(text, FILE).map_err(|e| e.to_string())
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_full_policy_parses() {
        let p = parse(
            r#"
rules:
  - identities: ["spiffe://cluster.local/ns/sched/sa/orchestrator", "unix:uid=0"]
    namespaces: ["team-*", "default"]
    verbs: [start, stop, read, watch]
    podSecurity: privileged
    hostPaths: ["/var/lib/data/", "/"]
    hostPorts: ["8080", "9000-9100", 443]
    registries: ["registry.example.com", "*.corp"]
  - identities: ["cn:reader"]
    namespaces: ["*"]
    verbs: [read, read]
    hostPaths:
"#,
        )
        .unwrap();
        assert_eq!(p.source, FILE);
        assert_eq!(p.rules.len(), 2);
        let r = &p.rules[0];
        assert_eq!(r.verbs, Verb::ALL.to_vec());
        assert_eq!(r.level, Level::Privileged);
        assert_eq!(r.allow.host_path_prefixes, ids(&["/var/lib/data", "/"]));
        assert_eq!(
            r.allow.host_ports,
            vec![
                PortRange {
                    first: 8080,
                    last: 8080
                },
                PortRange {
                    first: 9000,
                    last: 9100
                },
                PortRange {
                    first: 443,
                    last: 443
                },
            ]
        );
        assert_eq!(r.allow.registries, ids(&["registry.example.com", "*.corp"]));
        let r = &p.rules[1];
        assert_eq!(r.verbs, vec![Verb::Read], "a repeated verb counts once");
        assert_eq!(r.level, Level::Baseline, "baseline by default");
        assert_eq!(r.allow, Allowances::default());
    }

    #[test]
    fn the_example_policy_parses() {
        let text = include_str!("../../examples/authz-policy.yaml");
        let p = Policy::parse(text, "examples/authz-policy.yaml").unwrap();
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[0].level, Level::Privileged);
    }

    #[test]
    fn no_rules_denies_everything() {
        let p = parse("rules: []").unwrap();
        assert!(p.rules.is_empty());
        assert!(!p.holds_anywhere(&ids(&["unix:uid=0"]), Verb::Read));
    }

    #[test]
    fn every_error_names_the_path_and_the_rule() {
        let rule = |extra: &str| {
            format!("rules:\n  - identities: [a]\n    namespaces: [b]\n    verbs: [read]\n{extra}")
        };
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "(document): empty"),
            ("---\nrules: []\n---\nrules: []\n".into(), "(document): one YAML document"),
            ("[1]".into(), "(document): must be a mapping, not a list"),
            ("rules: []\nextra: 1".into(), "extra: unknown key (the policy has only `rules`)"),
            ("other: 1".into(), "other: unknown key"),
            ("{}".into(), "rules: missing"),
            ("rules: {}".into(), "rules: must be a list, not a mapping"),
            ("rules: [7]".into(), "rules[0]: must be a mapping, not a number"),
            (
                "rules:\n  - {identities: [a], identities: [b], namespaces: [b], verbs: [read]}".into(),
                "duplicate",
            ),
            (
                rule("    delete: [x]\n"),
                "rules[0].delete: unknown key (one of identities, namespaces, verbs",
            ),
            (
                "rules:\n  - identities: [a]\n    namespaces: [b]\n    verbs: [start, stop, delete]\n".into(),
                "rules[0].verbs[2]: unknown verb \"delete\" (one of start, stop, read, watch)",
            ),
            (
                "rules:\n  - namespaces: [b]\n    verbs: [read]\n".into(),
                "rules[0].identities: missing",
            ),
            (
                "rules:\n  - identities: [a]\n    verbs: [read]\n".into(),
                "rules[0].namespaces: missing",
            ),
            (
                "rules:\n  - identities: [a]\n    namespaces: [b]\n".into(),
                "rules[0].verbs: missing",
            ),
            (
                "rules:\n  - identities: []\n    namespaces: [b]\n    verbs: [read]\n".into(),
                "rules[0].identities: must not be empty",
            ),
            (
                "rules:\n  - identities: a\n    namespaces: [b]\n    verbs: [read]\n".into(),
                "rules[0].identities: must be a list of strings, not a string",
            ),
            (
                "rules:\n  - identities: [a, 7]\n    namespaces: [b]\n    verbs: [read]\n".into(),
                "rules[0].identities[1]: must be a string, not a number",
            ),
            (
                "rules:\n  - identities: [a]\n    namespaces: [\" \"]\n    verbs: [read]\n".into(),
                "rules[0].namespaces[0]: must not be empty",
            ),
            (
                rule("    podSecurity: root\n"),
                "rules[0].podSecurity: unknown level \"root\" (one of privileged, baseline, restricted)",
            ),
            (
                rule("    podSecurity: [baseline]\n"),
                "rules[0].podSecurity: unknown level a list",
            ),
            (rule("    hostPaths: [data]\n"), "rules[0].hostPaths[0]: \"data\" is not an absolute path"),
            (
                rule("    hostPaths: [/var/../etc]\n"),
                "rules[0].hostPaths[0]: \"/var/../etc\" must not contain `..`",
            ),
            (rule("    hostPorts: [\"0\"]\n"), "rules[0].hostPorts[0]: \"0\" is not a port (1-65535)"),
            (rule("    hostPorts: [70000]\n"), "rules[0].hostPorts[0]: \"70000\" is not a port"),
            (rule("    hostPorts: [-1]\n"), "rules[0].hostPorts[0]: \"-1\" is not a port"),
            (rule("    hostPorts: [\"+80\"]\n"), "rules[0].hostPorts[0]: \"+80\" is not a port"),
            (rule("    hostPorts: [\"80-x\"]\n"), "rules[0].hostPorts[0]: \"x\" is not a port"),
            (
                rule("    hostPorts: [\"9100-9000\"]\n"),
                "rules[0].hostPorts[0]: \"9100-9000\": the first port is above the last",
            ),
            (rule("    hostPorts: [true]\n"), "rules[0].hostPorts[0]: must be a port or a range"),
            (rule("    hostPorts: []\n"), "rules[0].hostPorts: must not be empty"),
            (rule("    hostPorts: 80\n"), "rules[0].hostPorts: must be a list, not a number"),
            (
                rule("    registries: [\"docker.io/library\"]\n"),
                "rules[0].registries[0]: \"docker.io/library\" is not a registry host",
            ),
            ("rules: [\n".into(), "authorization policy /etc/podstart/policy.yaml: "),
            ("rules: !custom 1\n".into(), "authorization policy /etc/podstart/policy.yaml: "),
        ];
        // Errors after a good rule name the rule they are in.
        let second = "rules:\n  - {identities: [a], namespaces: [b], verbs: [read]}\n  - {identities: [a], namespaces: [b], verbs: [delete]}\n";
        let mut cases = cases;
        cases.push((second.into(), "rules[1].verbs[0]: unknown verb \"delete\""));
        for (text, want) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(
                err.starts_with(&format!("authorization policy {FILE}: ")),
                "{err}"
            );
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
    }

    fn policy() -> Policy {
        parse(
            r#"
rules:
  - identities: ["cn:admin"]
    namespaces: ["*"]
    verbs: [start, stop, read, watch]
    podSecurity: privileged
  - identities: ["spiffe://cluster.local/ns/*/sa/orchestrator"]
    namespaces: ["team-*", "default"]
    verbs: [start, stop, read]
    registries: ["registry.example.com"]
  - identities: ["spiffe://cluster.local/ns/sched/sa/orchestrator"]
    namespaces: ["kube-system"]
    verbs: [start]
    podSecurity: restricted
  - identities: ["unix:gid=1000"]
    namespaces: ["*"]
    verbs: [read, watch]
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_first_covering_rule_grants() {
        let p = policy();
        let orch = ids(&["spiffe://cluster.local/ns/sched/sa/orchestrator"]);
        let user = ids(&["unix:uid=1000", "unix:gid=1000"]);
        let admin = ids(&["dns:admin.example", "cn:admin"]);
        let global = ids(&["*.corp"]);
        let (nobody, root) = (ids(&[]), ids(&["unix:uid=0"]));
        // (who, verb, namespace, the rule and level granted, or none)
        type Case<'a> = (&'a Vec<String>, Verb, &'a str, Option<(usize, Level)>);
        let table: Vec<Case<'_>> = vec![
            (
                &admin,
                Verb::Start,
                "kube-system",
                Some((0, Level::Privileged)),
            ),
            (&admin, Verb::Watch, "", Some((0, Level::Privileged))),
            (&orch, Verb::Start, "team-a", Some((1, Level::Baseline))),
            (&orch, Verb::Start, "default", Some((1, Level::Baseline))),
            (&orch, Verb::Stop, "team-a", Some((1, Level::Baseline))),
            (&orch, Verb::Watch, "team-a", None),
            (
                &orch,
                Verb::Start,
                "kube-system",
                Some((2, Level::Restricted)),
            ),
            (&orch, Verb::Stop, "kube-system", None),
            (&orch, Verb::Start, "other", None),
            (&user, Verb::Read, "kube-system", Some((3, Level::Baseline))),
            (&user, Verb::Watch, "team-a", Some((3, Level::Baseline))),
            (&user, Verb::Start, "default", None),
            (&user, Verb::Stop, "default", None),
            (&nobody, Verb::Read, "default", None),
            (&root, Verb::Read, "default", None),
        ];
        for (who, verb, ns, want) in table {
            let got = p.grant(who, verb, ns, &global);
            assert_eq!(
                got.as_ref().map(|g| (g.rule.clone(), g.level)),
                want.map(|(i, l)| (format!("rules[{i}] of {FILE}"), l)),
                "{who:?} {verb} {ns:?}"
            );
        }
        // A rule's registries replace the global list; without any, the
        // global list applies.
        let g = p.grant(&orch, Verb::Start, "team-a", &global).unwrap();
        assert_eq!(g.allow.registries, ids(&["registry.example.com"]));
        let g = p.grant(&orch, Verb::Start, "kube-system", &global).unwrap();
        assert_eq!(g.allow.registries, global);
    }

    #[test]
    fn only_the_literal_anonymous_names_a_caller_without_identities() {
        let p = parse(
            "rules:\n  - {identities: [\"*\"], namespaces: [\"*\"], verbs: [read]}\n  - {identities: [anonymous], namespaces: [lab], verbs: [read]}\n",
        )
        .unwrap();
        let nobody = ids(&[]);
        assert_eq!(p.rule_for(&nobody, Verb::Read, "default"), None);
        assert_eq!(p.rule_for(&nobody, Verb::Read, "lab").map(|r| r.0), Some(1));
        assert_eq!(
            p.rule_for(&ids(&["cn:x"]), Verb::Read, "lab").map(|r| r.0),
            Some(0)
        );
        assert_eq!(p.rule_for(&ids(&["cn:x"]), Verb::Start, "lab"), None);
    }

    #[test]
    fn holding_a_verb_anywhere() {
        let p = policy();
        let user = ids(&["unix:uid=1000", "unix:gid=1000"]);
        assert!(p.holds_anywhere(&user, Verb::Read));
        assert!(p.holds_anywhere(&user, Verb::Watch));
        assert!(!p.holds_anywhere(&user, Verb::Start));
        assert!(!p.holds_anywhere(&user, Verb::Stop));
        assert!(!p.holds_anywhere(&ids(&["cn:nobody"]), Verb::Read));
    }
}
