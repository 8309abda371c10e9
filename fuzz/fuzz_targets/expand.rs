//! `$(VAR)` expansion (`podstart::spec::expand`): one string against a set of
//! variables, then a container's environment, command and args.
//!
//! Oracle: nothing panics, and the output is never longer than the input
//! allows. A reference `$(NAME)` takes at least 3 bytes and becomes at most
//! the longest value, so one expansion yields at most
//! `len + len / 3 * longest_value` bytes; with no known name it never grows.
//! The environment expands against earlier entries, so its bound is computed
//! entry by entry; inputs whose bound passes 1 MiB (expansion bombs, which
//! request validation must refuse before anything is built) are only measured,
//! not expanded, so the target spends no memory on them.
//!
//! The input is text, so the seeds stay readable: sections separated by
//! lines `%%` — the string to expand (its lines joined by `\n`), the
//! variables (`NAME=VALUE` a line), the container's env (the same), its
//! command and its args (an element a line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use podstart::proto::v1::{Container, EnvVar};
use podstart::spec::expand::{container_env, expand, expand_command_and_args};
use std::collections::HashMap;

/// Largest predicted expansion the target actually builds.
const BUILD_MAX: u64 = 1 << 20;

#[derive(Debug, Default)]
struct Input {
    text: String,
    vars: Vec<(String, String)>,
    env: Vec<(String, String)>,
    command: Vec<String>,
    args: Vec<String>,
}

impl Input {
    fn parse(data: &str) -> Input {
        let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
        for line in data.split('\n') {
            if line == "%%" {
                sections.push(Vec::new());
            } else if let Some(last) = sections.last_mut() {
                last.push(line);
            }
        }
        let pairs = |lines: Option<&Vec<&str>>| -> Vec<(String, String)> {
            lines
                .map(|lines| {
                    lines
                        .iter()
                        .map(|line| match line.split_once('=') {
                            Some((name, value)) => (name.to_string(), value.to_string()),
                            None => (line.to_string(), String::new()),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let strings = |lines: Option<&Vec<&str>>| -> Vec<String> {
            lines
                .map(|lines| lines.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        };
        Input {
            text: sections[0].join("\n"),
            vars: pairs(sections.get(1)),
            env: pairs(sections.get(2)),
            command: strings(sections.get(3)),
            args: strings(sections.get(4)),
        }
    }
}

/// The most `input` can expand to when no value is longer than `longest`.
fn bound(input: &str, longest: u64) -> u64 {
    let len = input.len() as u64;
    len.saturating_add((len / 3).saturating_mul(longest))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::parse(text);
    // One string against a fixed set of variables.
    let vars: HashMap<&str, &str> = input
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let longest = vars.values().map(|v| v.len() as u64).max().unwrap_or(0);
    let out = expand(&input.text, |name| vars.get(name).map(|v| (*v).to_string()));
    assert!(
        out.len() as u64 <= bound(&input.text, longest),
        "{} bytes from {} with values of at most {longest}",
        out.len(),
        input.text.len(),
    );
    let unknown = expand(&input.text, |_| None);
    assert!(
        unknown.len() <= input.text.len(),
        "grew without a known name"
    );
    if !input.text.contains('$') {
        assert_eq!(out, input.text);
    }

    // A container: env expanded against earlier entries, then command/args.
    let mut longest_env = 0u64;
    let mut total = 0u64;
    for (_, value) in &input.env {
        let b = bound(value, longest_env);
        longest_env = longest_env.max(b);
        total = total.saturating_add(b);
    }
    for s in input.command.iter().chain(&input.args) {
        total = total.saturating_add(bound(s, longest_env));
    }
    if total > BUILD_MAX {
        return;
    }
    let c = Container {
        env: input
            .env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
                ..Default::default()
            })
            .collect(),
        command: input.command.clone(),
        args: input.args.clone(),
        ..Default::default()
    };
    // No var reads the pod's fields here (value_from is unset).
    let env = container_env(&c, |_| String::new());
    assert!(env.len() <= c.env.len());
    let built: u64 = env.iter().map(|(_, v)| v.len() as u64).sum();
    let (command, args) = expand_command_and_args(&c, &env);
    assert_eq!(command.len(), c.command.len());
    assert_eq!(args.len(), c.args.len());
    let built = built
        + command
            .iter()
            .chain(&args)
            .map(|s| s.len() as u64)
            .sum::<u64>();
    assert!(
        built <= total,
        "built {built} bytes, predicted at most {total}"
    );
});
