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
//!
//! Expansion multiplies: `B = $(A)$(A)…` and `C = $(B)$(B)…` turn a few
//! kilobytes of request into hundreds of megabytes. Kubernetes sets no cap
//! on the result (the kubelet expands whatever the API server stored, and
//! the API server only bounds the stored object, through etcd's request
//! size); podstart bounds it, and measures it *before* building anything:
//! [`expanded_len`] computes the length a string would expand to from the
//! lengths of the values alone, and [`check_container`] runs the whole
//! environment, command and args through it against [`Limits`]. Request
//! validation calls [`check_container`], so [`container_env`] and
//! [`expand_command_and_args`] only ever build configs that fit.

use crate::proto::v1::{Container, FieldSource};
use std::collections::HashMap;

/// One piece of an input string, as the expansion rules cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Copied to the output as is.
    Text(&'a str),
    /// `$(name)`: the value of `name`, or `$(name)` verbatim when unknown.
    Ref(&'a str),
}

/// Cuts `input` into pieces with the module's rules; [`expand`] and
/// [`expanded_len`] both walk these, so they agree by construction.
fn scan<'a>(input: &'a str, mut emit: impl FnMut(Piece<'a>)) {
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        emit(Piece::Text(&rest[..pos]));
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            // A `$` at the very end stays.
            emit(Piece::Text("$"));
            return;
        };
        match next {
            '$' => {
                emit(Piece::Text("$"));
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    emit(Piece::Ref(&after[1..close]));
                    rest = &after[close + 1..];
                }
                None => {
                    emit(Piece::Text("$("));
                    rest = &after[1..];
                }
            },
            other => {
                let n = other.len_utf8();
                emit(Piece::Text(&rest[pos..pos + 1 + n]));
                rest = &after[n..];
            }
        }
    }
    emit(Piece::Text(rest));
}

/// Expands `$(NAME)` references in `input`; see the module docs for the rules.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    scan(input, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Ref(name) => match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
        },
    });
    out
}

/// The length in bytes [`expand`] would return for `input`, given the
/// length of each known variable's value (`lookup_len`), without building
/// the string. Saturates at `usize::MAX`.
pub fn expanded_len(input: &str, lookup_len: impl Fn(&str) -> Option<usize>) -> usize {
    let mut len = 0usize;
    scan(input, |piece| {
        let n = match piece {
            Piece::Text(t) => t.len(),
            // `$(` + name + `)` when unknown.
            Piece::Ref(name) => lookup_len(name).unwrap_or(name.len() + 3),
        };
        len = len.saturating_add(n);
    });
    len
}

/// The bounds [`check_container`] holds a container to; the numbers live
/// with the other request limits in `spec::validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest expanded env value, command or args element, in bytes.
    pub string_bytes: usize,
    /// Largest environment plus command plus args, in bytes, counted as
    /// `execve` counts them: each env entry as `NAME=value` plus its NUL,
    /// each command and args element plus its NUL.
    pub total_bytes: usize,
    /// The longest value an env var read from the pod's fields
    /// (`value_from`) may have.
    pub field_bytes: usize,
}

/// A container whose expansion would exceed [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// The offending field relative to the container: `env[2].value`,
    /// `args[0]`, or `env` when the environment as a whole is too large.
    pub field: String,
    /// The rule, in words, with the limit.
    pub rule: String,
}

/// Checks that expanding `c`'s env, command and args stays within
/// `limits`, from lengths alone: nothing is expanded, and the work is
/// linear in the size of the container's strings. Returns the total size
/// (as [`Limits::total_bytes`] counts it).
pub fn check_container(c: &Container, limits: Limits) -> Result<usize, TooLarge> {
    let too_long = |field: String| TooLarge {
        field,
        rule: format!("expands to more than {} bytes", limits.string_bytes),
    };
    // The same walk as `container_env`, over lengths.
    let mut lens: Vec<(&str, usize)> = Vec::with_capacity(c.env.len());
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(c.env.len());
    for (i, var) in c.env.iter().enumerate() {
        let len = if var.value_from.is_some() {
            limits.field_bytes
        } else {
            expanded_len(&var.value, |name| index.get(name).map(|&j| lens[j].1))
        };
        if len > limits.string_bytes {
            return Err(too_long(format!("env[{i}].value")));
        }
        match index.get(var.name.as_str()) {
            Some(&j) => lens[j].1 = len,
            None => {
                index.insert(var.name.as_str(), lens.len());
                lens.push((var.name.as_str(), len));
            }
        }
    }
    let over_total = |field: String| TooLarge {
        field,
        rule: format!(
            "env, command and args together expand to more than {} bytes",
            limits.total_bytes
        ),
    };
    let mut total = lens.iter().fold(0usize, |sum, (name, len)| {
        sum.saturating_add(name.len() + len + 2)
    });
    if total > limits.total_bytes {
        return Err(over_total("env".to_string()));
    }
    let final_len: HashMap<&str, usize> = lens.iter().copied().collect();
    let lists = [("command", &c.command), ("args", &c.args)];
    for (list, items) in lists {
        for (i, s) in items.iter().enumerate() {
            let len = expanded_len(s, |name| final_len.get(name).copied());
            if len > limits.string_bytes {
                return Err(too_long(format!("{list}[{i}]")));
            }
            total = total.saturating_add(len + 1);
            if total > limits.total_bytes {
                return Err(over_total(format!("{list}[{i}]")));
            }
        }
    }
    Ok(total)
}

/// The container's environment: `env` in order, each value expanded against
/// the entries before it only. A name defined twice keeps its first position
/// and its last value (the later definition wins, as in the kubelet's map).
/// A var read from the pod's fields takes `field`'s answer as it is (not
/// expanded, as the kubelet), and later vars see it.
pub fn container_env(
    c: &Container,
    field: impl Fn(&FieldSource) -> String,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(c.env.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(c.env.len());
    for var in &c.env {
        let value = if let Some(src) = &var.value_from {
            field(src)
        } else if var.value.is_empty() {
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
                ..Default::default()
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
        let got = container_env(&c, |_| String::new());
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
        let e = container_env(&c, |_| String::new());
        let (cmd, args) = expand_command_and_args(&c, &e);
        assert_eq!(cmd, vec!["/bin/sh", "-c"]);
        assert_eq!(args, vec!["echo hi $(MSG) $(NOPE)"]);
    }

    #[test]
    fn expanded_len_agrees_with_expand() {
        let inputs = [
            "$(VAR_A)",
            "___$(VAR_B)___",
            "$(VAR_REF)",
            "$(BIG_MONEY)",
            "$(UNKNOWN)",
            "$$",
            "$$$",
            "$$(VAR_B)_$(VAR_A)",
            "f000-$$VAR_A",
            "$",
            "foo$",
            "$é$(VAR_A)",
            "$(VAR_A",
            "$(",
            "$( $$",
            "$((VAR_A)",
            "$(VAR_A$(VAR_B))",
            "$()",
            "",
            "plain",
        ];
        for input in inputs {
            let want = expand(input, vars).len();
            let got = expanded_len(input, |n| vars(n).map(|v| v.len()));
            assert_eq!(got, want, "input {input:?}");
        }
    }

    /// The bound is measured from lengths: a lookup claiming values no
    /// machine could hold is summed, saturating, and no string is built
    /// (building one would abort the test).
    #[test]
    fn expanded_len_builds_nothing() {
        let huge = |_: &str| Some(usize::MAX / 2);
        assert_eq!(expanded_len("$(X)", huge), usize::MAX / 2);
        assert_eq!(expanded_len("$(X)$(X)$(X)", huge), usize::MAX);

        let c = Container {
            env: env(&[("HUGE", "x")]),
            args: vec!["$(HUGE)".repeat(3)],
            ..Default::default()
        };
        // Limits far beyond memory: the check still only adds numbers.
        let limits = Limits {
            string_bytes: usize::MAX / 2,
            total_bytes: usize::MAX / 2,
            field_bytes: 0,
        };
        assert_eq!(check_container(&c, limits), Ok(4 + 1 + 2 + 3 + 1));
    }

    const LIMITS: Limits = Limits {
        string_bytes: 128 * 1024,
        total_bytes: 1024 * 1024,
        field_bytes: 4096,
    };

    /// A = 1 KiB, B = $(A) x 1024 (1 MiB), C = $(B) x 200 (200 MiB): refused
    /// at B, from a request of a few kilobytes, without expanding anything.
    #[test]
    fn expansion_bomb_is_refused_before_it_is_built() {
        let a = "a".repeat(1024);
        let b = "$(A)".repeat(1024);
        let cc = "$(B)".repeat(200);
        let c = Container {
            env: env(&[("A", &a), ("B", &b), ("C", &cc)]),
            ..Default::default()
        };
        let err = check_container(&c, LIMITS).unwrap_err();
        assert_eq!(err.field, "env[1].value");
        assert_eq!(err.rule, "expands to more than 131072 bytes");

        // Each step just under the per-string limit, multiplied through args.
        let c = Container {
            env: env(&[("A", &"a".repeat(1000)), ("B", &"$(A)".repeat(100))]),
            args: vec!["$(B)".repeat(20)],
            ..Default::default()
        };
        let err = check_container(&c, LIMITS).unwrap_err();
        assert_eq!(err.field, "args[0]");
        assert!(err.rule.contains("131072"), "{}", err.rule);
    }

    #[test]
    fn per_string_limit_is_exact() {
        let at = |n: usize| Container {
            env: env(&[("A", &"a".repeat(n / 2)), ("B", "$(A)$(A)")]),
            command: vec!["$(B)".into()],
            ..Default::default()
        };
        assert!(check_container(&at(128 * 1024), LIMITS).is_ok());
        let err = check_container(&at(128 * 1024 + 2), LIMITS).unwrap_err();
        assert_eq!(err.field, "env[1].value");
    }

    #[test]
    fn total_limit_counts_env_command_and_args() {
        // Eight 127 KiB values fit one by one but not together.
        let value = "v".repeat(127 * 1024);
        let vars: Vec<(String, String)> =
            (0..9).map(|i| (format!("V{i}"), value.clone())).collect();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let c = Container {
            env: env(&pairs),
            ..Default::default()
        };
        let err = check_container(&c, LIMITS).unwrap_err();
        assert_eq!(err.field, "env");
        assert!(err.rule.contains("1048576"), "{}", err.rule);

        // The env fits; the args push it over.
        let c = Container {
            env: env(&pairs[..7]),
            args: vec!["$(V0)".into(), "$(V1)".into()],
            ..Default::default()
        };
        let err = check_container(&c, LIMITS).unwrap_err();
        assert_eq!(err.field, "args[1]");
    }

    #[test]
    fn check_matches_what_is_built() {
        let c = Container {
            command: vec!["/bin/$(SHELL)".into(), "-c".into()],
            args: vec!["echo $(MSG) $$(MSG) $(NOPE)".into()],
            env: env(&[("SHELL", "sh"), ("MSG", "hi"), ("MSG", "$(MSG)$(MSG)")]),
            ..Default::default()
        };
        let e = container_env(&c, |_| String::new());
        let (cmd, args) = expand_command_and_args(&c, &e);
        let built: usize = e.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>()
            + cmd.iter().chain(&args).map(|s| s.len() + 1).sum::<usize>();
        assert_eq!(check_container(&c, LIMITS), Ok(built));
    }
}
