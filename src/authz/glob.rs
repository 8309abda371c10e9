//! The globs of the authorization policy and `--allowed-registries`: `*`
//! matches any run of characters (none included, `/` and `.` included);
//! every other character matches itself. No other wildcard exists, so a
//! policy reads the same to people and to podstart.

/// Whether `text` matches `pattern` as a whole.
///
/// Linear in `text` for each `*` retried: the last `*` seen is the only
/// one ever re-tried (the classic wildcard walk), so a long text cannot
/// make matching explode.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it was tried from.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` take one more byte and retry after it.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether any of `patterns` matches `text`.
pub fn any(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| matches(p, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        let table: &[(&str, &str, bool)] = &[
            ("default", "default", true),
            ("default", "defaults", false),
            ("default", "defaul", false),
            ("default", "", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at.all", true),
            ("**", "x", true),
            ("team-*", "team-a", true),
            ("team-*", "team-", true),
            ("team-*", "team", false),
            ("team-*", "xteam-a", false),
            ("*.corp", "registry.corp", true),
            ("*.corp", "a.b.corp", true),
            ("*.corp", "corp", false),
            ("*.corp", "registry.corp.evil.com", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYYcZ", false),
            ("a*b*c", "acb", false),
            ("*abab", "abababab", true),
            ("*aab", "aaaab", true),
            (
                "spiffe://cluster.local/ns/*/sa/orchestrator",
                "spiffe://cluster.local/ns/sched/sa/orchestrator",
                true,
            ),
            (
                "spiffe://cluster.local/ns/*/sa/orchestrator",
                "spiffe://cluster.local/ns/sched/sa/other",
                false,
            ),
            ("unix:uid=0", "unix:uid=00", false),
            ("unix:uid=0", "unix:uid=0", true),
            ("é*", "été", true),
            ("*é", "été", true),
            ("?", "a", false),
            ("[a]", "a", false),
        ];
        for (pattern, text, want) in table {
            assert_eq!(matches(pattern, text), *want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn a_long_text_against_many_stars_ends() {
        let text = "a".repeat(100_000);
        assert!(!matches("*a*a*a*a*a*b", &text));
        assert!(matches("*a*a*a*a*a*", &text));
    }

    #[test]
    fn any_pattern_of_a_list() {
        let list = vec!["default".to_string(), "team-*".to_string()];
        assert!(any(&list, "team-x"));
        assert!(any(&list, "default"));
        assert!(!any(&list, "kube-system"));
        assert!(!any(&[], "default"));
    }
}
