//! `$(VAR)` expansion with the kubelet's rules
//! (`third_party/forked/golang/expansion`), the container environment built
//! the way `makeEnvironmentVariables` builds it, and command/args expansion
//! (`ExpandContainerCommandAndArgs`).
//!
//! Rules, for a `$` that is not the last character of the input:
//! - `$(NAME)` is replaced by NAME's value when the lookup knows NAME, and
//!   kept verbatim (`$(NAME)`) when it does not — `$()` included;
//! - the name runs to the first `)`, so `$(A$(B))` looks up `A$(B` (unknown:
//!   the text stays as written);
//! - `$$` becomes `$`, so `$$(X)` yields the literal `$(X)`;
//! - an unterminated `$(` and `$` followed by any other character are kept
//!   literally, and scanning continues after them.
//!
//! A trailing `$` is kept. The kubelet works on bytes and mangles a
//! multi-byte character right after a lone `$`; this version keeps it intact.

use crate::proto::v1::Container;
use std::collections::HashMap;

/// Expands `$(NAME)` references in `input`; see the module docs for the rules.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            // A `$` at the very end stays.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            other => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment: `env` in order, each value expanded against
/// the entries before it only. A name defined twice keeps its first position
/// and its last value (the later definition wins, as in the kubelet's map).
pub fn container_env(c: &Container) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(c.env.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(c.env.len());
    for var in &c.env {
        let value = if var.value.is_empty() {
            String::new()
        } else {
            expand(&var.value, |name| {
                index.get(name).map(|&i| out[i].1.clone())
            })
        };
        match index.get(&var.name) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(var.name.clone(), out.len());
                out.push((var.name.clone(), value));
            }
        }
    }
    out
}

/// The container's command and args, each element expanded against `env`
/// (the result of [`container_env`]).
pub fn expand_command_and_args(
    c: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| map.get(name).map(|v| (*v).to_string());
    let command = c.command.iter().map(|s| expand(s, lookup)).collect();
    let args = c.args.iter().map(|s| expand(s, lookup)).collect();
    (command, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::EnvVar;

    fn vars(name: &str) -> Option<String> {
        match name {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_C" => Some("C".into()),
            "VAR_REF" => Some("$(VAR_A)".into()),
            "VAR_EMPTY" => Some(String::new()),
            "BIG_MONEY" => Some("$$$".into()),
            _ => None,
        }
    }

    #[test]
    fn kubelet_cases() {
        let cases = [
            // defined
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$(VAR_EMPTY)", ""),
            ("x$(VAR_EMPTY)y", "xy"),
            // values are not expanded again
            ("$(VAR_REF)", "$(VAR_A)"),
            ("$(BIG_MONEY)", "$$$"),
            // undefined: verbatim
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("foo-$(UNKNOWN)-bar", "foo-$(UNKNOWN)-bar"),
            ("$(UNKNOWN)$(VAR_A)", "$(UNKNOWN)A"),
            // escapes
            ("$$", "$"),
            ("$$$", "$$"),
            ("$$$$", "$$"),
            ("$$(VAR_B)", "$(VAR_B)"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)$$(VAR_B)", "$(VAR_A)$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$$(BIG_MONEY)", "$$$$$$"),
            // lone `$` and `$x`
            ("$", "$"),
            ("foo$", "foo$"),
            ("$(VAR_A)$", "A$"),
            ("$VAR_A", "$VAR_A"),
            ("foo$bar", "foo$bar"),
            ("$é$(VAR_A)", "$éA"),
            ("\\$(VAR_C)", "\\C"),
            // unterminated
            ("$(VAR_A", "$(VAR_A"),
            ("$(", "$("),
            ("$(VAR_A $x", "$(VAR_A $x"),
            ("$( $$", "$( $"),
            ("$((VAR_A)", "$((VAR_A)"),
            // nested-looking: the name runs to the first ')'
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_$(VAR_A))", "$(VAR_$(VAR_A))"),
            // empty
            ("$()", "$()"),
            ("", ""),
            ("no refs here", "no refs here"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, vars), want, "input {input:?}");
        }
    }

    #[test]
    fn lookup_is_asked_for_the_empty_name() {
        assert_eq!(expand("<$()>", |n| n.is_empty().then(|| "E".into())), "<E>");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(n, v)| EnvVar {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    #[test]
    fn env_expands_against_earlier_entries_only() {
        let c = Container {
            env: env(&[
                ("A", "a"),
                ("B", "$(A)-b"),
                ("C", "$(D)"),
                ("D", "d"),
                ("A", "again-$(A)"),
                ("E", "$(A)$$(A)"),
                ("F", ""),
            ]),
            ..Default::default()
        };
        let got = container_env(&c);
        let want: Vec<(String, String)> = [
            ("A", "again-a"),
            ("B", "a-b"),
            ("C", "$(D)"),
            ("D", "d"),
            ("E", "again-a$(A)"),
            ("F", ""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn command_and_args_expand_against_env() {
        let c = Container {
            command: vec!["/bin/$(SHELL)".into(), "-c".into()],
            args: vec!["echo $(MSG) $$(MSG) $(NOPE)".into()],
            env: env(&[("SHELL", "sh"), ("MSG", "hi")]),
            ..Default::default()
        };
        let e = container_env(&c);
        let (cmd, args) = expand_command_and_args(&c, &e);
        assert_eq!(cmd, vec!["/bin/sh", "-c"]);
        assert_eq!(args, vec!["echo hi $(MSG) $(NOPE)"]);
    }
}
