//! Who may do what on this node: the `Authorizer` decides, for a caller
//! (`listen::Caller`), a verb and a namespace, whether the request may go
//! on and with which admission `Grant`. The policy comes from
//! `--authz-policy` (`policy.rs`; the file is re-read when it changes, the
//! last good policy kept when it does not parse); without one, the default
//! policy applies: root (`unix:uid=0`) and the group owning the unix socket
//! the caller came through (`unix:gid=N`) may do everything, in every
//! namespace, at baseline. With a policy, what no rule grants is denied.
//! `--allowed-registries` gives the registries of every grant whose rule
//! names none.
pub mod glob;
pub mod policy;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

pub use policy::{Policy, PolicyError, Verb};

use crate::admission::{Allowances, Grant, Level};
use crate::listen::Caller;
use crate::spec::validate::echo;

/// The name of the grant given by the default policy.
pub const DEFAULT_POLICY: &str = "the default policy";

/// How often the policy file is checked for a change.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(5);

/// A request its caller may not make. The message names the caller's
/// identities, the verb and the namespace, and nothing of the request
/// beyond them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("caller {caller} may not {verb} pods {}", match .namespace {
    Some(ns) => format!("in namespace {}", echo(ns)),
    None => "in any namespace".to_string(),
})]
pub struct Denied {
    /// The caller as it prints (`unix:uid=1000,unix:gid=1000`, `anonymous`).
    pub caller: String,
    pub verb: Verb,
    /// None when the caller holds the verb in no namespace at all.
    pub namespace: Option<String>,
}

/// Decides requests; cheap to clone (every clone sees policy reloads).
#[derive(Clone, Debug)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The policy file; None for the default policy or a policy given as
    /// text.
    file: Option<PathBuf>,
    /// None: the default policy.
    policy: RwLock<Option<Loaded>>,
    /// `--allowed-registries`.
    registries: Vec<String>,
}

#[derive(Debug, Clone)]
struct Loaded {
    policy: Arc<Policy>,
    /// The file's modification time and size when it was last read (None:
    /// it was missing then, or the policy came as text).
    stamp: Option<Stamp>,
}

type Stamp = (SystemTime, u64);

impl Default for Authorizer {
    /// The default policy, every registry allowed.
    fn default() -> Authorizer {
        Authorizer::build(None, None, Vec::new())
    }
}

impl Authorizer {
    /// From `--authz-policy` (read now; an error stops start-up) and
    /// `--allowed-registries`.
    pub fn new(file: Option<&Path>, registries: Vec<String>) -> Result<Authorizer, PolicyError> {
        check_registries(&registries)?;
        let Some(file) = file else {
            return Ok(Authorizer::build(None, None, registries));
        };
        let (policy, stamp) = read(file)?;
        let loaded = Loaded {
            policy: Arc::new(policy),
            stamp: Some(stamp),
        };
        Ok(Authorizer::build(
            Some(file.to_path_buf()),
            Some(loaded),
            registries,
        ))
    }

    /// From a policy's text, named `source` in grants (never reloaded).
    pub fn from_text(
        text: &str,
        source: &str,
        registries: Vec<String>,
    ) -> Result<Authorizer, PolicyError> {
        check_registries(&registries)?;
        let loaded = Loaded {
            policy: Arc::new(Policy::parse(text, source)?),
            stamp: None,
        };
        Ok(Authorizer::build(None, Some(loaded), registries))
    }

    fn build(file: Option<PathBuf>, loaded: Option<Loaded>, registries: Vec<String>) -> Authorizer {
        Authorizer {
            inner: Arc::new(Inner {
                file,
                policy: RwLock::new(loaded),
                registries,
            }),
        }
    }

    /// The policy in force; None for the default policy.
    fn current(&self) -> Option<Arc<Policy>> {
        let guard = self
            .inner
            .policy
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().map(|l| l.policy.clone())
    }

    /// The grant for `caller` to `verb` pods in `namespace`, or why not.
    pub fn authorize(&self, caller: &Caller, verb: Verb, namespace: &str) -> Result<Grant, Denied> {
        let granted = match self.current() {
            None => default_applies(caller).then(|| Grant {
                level: Level::Baseline,
                allow: Allowances {
                    registries: self.inner.registries.clone(),
                    ..Allowances::default()
                },
                rule: DEFAULT_POLICY.to_string(),
            }),
            Some(policy) => {
                policy.grant(&caller.identities, verb, namespace, &self.inner.registries)
            }
        };
        granted.ok_or_else(|| Denied {
            caller: caller.to_string(),
            verb,
            namespace: Some(namespace.to_string()),
        })
    }

    /// Whether `caller` may `verb` pods in `namespace` (`authorize`
    /// without building the grant).
    pub fn allows(&self, caller: &Caller, verb: Verb, namespace: &str) -> bool {
        match self.current() {
            None => default_applies(caller),
            Some(policy) => policy
                .rule_for(&caller.identities, verb, namespace)
                .is_some(),
        }
    }

    /// Whether `caller` may `verb` pods in at least one namespace; the
    /// refusal names no namespace. Checked before a request that names a
    /// pod by uid looks the pod up.
    pub fn holds(&self, caller: &Caller, verb: Verb) -> Result<(), Denied> {
        let holds = match self.current() {
            None => default_applies(caller),
            Some(policy) => policy.holds_anywhere(&caller.identities, verb),
        };
        if holds {
            Ok(())
        } else {
            Err(Denied {
                caller: caller.to_string(),
                verb,
                namespace: None,
            })
        }
    }

    /// The namespaces `caller` may `verb` pods in, as a filter (ListPods,
    /// WatchEvents). It follows the policy in force at each check, so a
    /// long watch loses what a reload takes away.
    pub fn scope(&self, caller: &Caller, verb: Verb) -> Scope {
        Scope {
            authorizer: self.clone(),
            caller: caller.clone(),
            verb,
        }
    }

    /// Re-reads the policy file every `period` while `stop` is not
    /// cancelled, when its modification time or size changed. A file that
    /// cannot be read or does not parse is logged and the last good policy
    /// kept. Does nothing without a policy file.
    pub fn spawn_reload(&self, period: Duration, stop: CancellationToken) {
        let Some(file) = self.inner.file.clone() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                this.reload_if_changed(&file);
            }
        });
    }

    /// One check of the policy file: reads it again when its stamp moved.
    /// Returns whether a new policy took effect.
    pub fn reload_if_changed(&self, file: &Path) -> bool {
        let last = {
            let guard = self
                .inner
                .policy
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            guard.as_ref().and_then(|l| l.stamp)
        };
        if stamp(file).ok() == last {
            return false;
        }
        match read(file) {
            Ok((policy, new_stamp)) => {
                let rules = policy.rules.len();
                let mut guard = self
                    .inner
                    .policy
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *guard = Some(Loaded {
                    policy: Arc::new(policy),
                    stamp: Some(new_stamp),
                });
                tracing::info!(file = %file.display(), rules, "authorization policy reloaded");
                true
            }
            Err(e) => {
                // Remember the bad (or missing) file's stamp: it is
                // reported once, not every period.
                let seen = stamp(file).ok();
                let mut guard = self
                    .inner
                    .policy
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(loaded) = guard.as_mut() {
                    loaded.stamp = seen;
                }
                tracing::error!(error = %e, "authorization policy not reloaded: the last good one stays in force");
                false
            }
        }
    }
}

/// A caller's namespaces for one verb (`Authorizer::scope`).
#[derive(Clone, Debug)]
pub struct Scope {
    authorizer: Authorizer,
    caller: Caller,
    verb: Verb,
}

impl Scope {
    pub fn allows(&self, namespace: &str) -> bool {
        self.authorizer.allows(&self.caller, self.verb, namespace)
    }
}

/// The default policy's identities: root, or the group of the socket the
/// caller came through.
fn default_applies(caller: &Caller) -> bool {
    let has = |id: &str| caller.identities.iter().any(|i| i == id);
    has("unix:uid=0")
        || caller
            .socket_gid
            .is_some_and(|g| has(&format!("unix:gid={g}")))
}

fn check_registries(registries: &[String]) -> Result<(), PolicyError> {
    for r in registries {
        policy::check_registry(r).map_err(|message| PolicyError::Invalid {
            file: "--allowed-registries".into(),
            path: r.clone(),
            message,
        })?;
    }
    Ok(())
}

fn stamp(file: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(file)?;
    Ok((meta.modified()?, meta.len()))
}

/// Reads and parses the policy file, with its stamp from before the read
/// (a write during the read shows as a change at the next check).
fn read(file: &Path) -> Result<(Policy, Stamp), PolicyError> {
    let err = |source| PolicyError::Read {
        file: file.display().to_string(),
        source,
    };
    let s = stamp(file).map_err(err)?;
    let text = std::fs::read_to_string(file).map_err(err)?;
    Ok((Policy::parse(&text, &file.display().to_string())?, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32, gid: u32, socket_gid: Option<u32>) -> Caller {
        Caller::unix(
            uid,
            gid,
            "unix:///run/podstart/podstart.sock".into(),
            socket_gid,
        )
    }

    fn tls(ids: &[&str]) -> Caller {
        Caller::named(
            ids.iter().map(|s| s.to_string()).collect(),
            "tcp://0.0.0.0:7443".into(),
        )
    }

    #[test]
    fn the_default_policy_admits_root_and_the_socket_group() {
        let a = Authorizer::default();
        let table: Vec<(Caller, bool)> = vec![
            (unix(0, 0, None), true),
            (unix(0, 5, Some(7)), true),
            (unix(1000, 7, Some(7)), true),
            (unix(1000, 1000, Some(7)), false),
            (unix(1000, 7, None), false),
            (tls(&["unix:uid=0"]), true),
            (tls(&["cn:admin"]), false),
            (tls(&[]), false),
        ];
        for (caller, allowed) in table {
            for verb in Verb::ALL {
                let got = a.authorize(&caller, verb, "kube-system");
                assert_eq!(got.is_ok(), allowed, "{caller} {verb}");
                assert_eq!(a.holds(&caller, verb).is_ok(), allowed, "{caller} {verb}");
                assert_eq!(a.allows(&caller, verb, "x"), allowed, "{caller} {verb}");
                if let Ok(g) = got {
                    assert_eq!(g.level, Level::Baseline);
                    assert_eq!(g.rule, DEFAULT_POLICY);
                }
            }
        }
    }

    #[test]
    fn global_registries_fill_grants_without_their_own() {
        let a = Authorizer::new(None, vec!["*.corp".into()]).unwrap();
        let g = a
            .authorize(&unix(0, 0, None), Verb::Start, "default")
            .unwrap();
        assert_eq!(g.allow.registries, vec!["*.corp".to_string()]);
        let err = Authorizer::new(None, vec!["docker.io/library".into()]).unwrap_err();
        assert!(err.to_string().contains("--allowed-registries"), "{err}");
    }

    const POLICY: &str = r#"
rules:
  - identities: ["unix:uid=0"]
    namespaces: ["*"]
    verbs: [start, stop, read, watch]
    podSecurity: privileged
  - identities: ["unix:gid=1000"]
    namespaces: ["team-*"]
    verbs: [read, watch]
"#;

    #[test]
    fn with_a_policy_what_no_rule_grants_is_denied() {
        let a = Authorizer::from_text(POLICY, "test", vec![]).unwrap();
        // The socket's group no longer counts: only the rules do.
        let user = unix(1000, 1000, Some(1000));
        let other = unix(1001, 1001, Some(1000));
        let g = a
            .authorize(&unix(0, 0, None), Verb::Start, "kube-system")
            .unwrap();
        assert_eq!(
            (g.level, g.rule.as_str()),
            (Level::Privileged, "rules[0] of test")
        );
        assert!(a.authorize(&user, Verb::Read, "team-a").is_ok());
        let denied = a.authorize(&user, Verb::Start, "kube-system").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "caller unix:uid=1000,unix:gid=1000 may not start pods in namespace \"kube-system\""
        );
        let denied = a.authorize(&user, Verb::Read, "default").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "caller unix:uid=1000,unix:gid=1000 may not read pods in namespace \"default\""
        );
        assert!(a.holds(&user, Verb::Watch).is_ok());
        let denied = a.holds(&user, Verb::Stop).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "caller unix:uid=1000,unix:gid=1000 may not stop pods in any namespace"
        );
        let denied = a.holds(&other, Verb::Read).unwrap_err();
        assert_eq!(denied.verb, Verb::Read);
        let anonymous = tls(&[]);
        assert_eq!(
            a.authorize(&anonymous, Verb::Watch, "team-a")
                .unwrap_err()
                .to_string(),
            "caller anonymous may not watch pods in namespace \"team-a\""
        );
        let scope = a.scope(&user, Verb::Watch);
        assert!(scope.allows("team-x"));
        assert!(!scope.allows("default"));
    }

    #[test]
    fn a_long_namespace_is_clipped_in_the_refusal() {
        let a = Authorizer::from_text(POLICY, "test", vec![]).unwrap();
        let ns = "n".repeat(100_000);
        let denied = a
            .authorize(&unix(5, 5, None), Verb::Start, &ns)
            .unwrap_err();
        assert!(
            denied.to_string().len() < 300,
            "{}",
            denied.to_string().len()
        );
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_bad_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, POLICY).unwrap();
        let a = Authorizer::new(Some(&file), vec![]).unwrap();
        let user = unix(1000, 1000, None);
        assert!(a.authorize(&user, Verb::Start, "team-a").is_err());
        assert!(!a.reload_if_changed(&file), "unchanged");

        // A longer file: its size changes even within the clock's grain.
        let more = format!(
            "{POLICY}  - identities: [\"unix:uid=1000\"]\n    namespaces: [team-a]\n    verbs: [start]\n"
        );
        std::fs::write(&file, more).unwrap();
        assert!(a.reload_if_changed(&file));
        let g = a.authorize(&user, Verb::Start, "team-a").unwrap();
        assert_eq!(g.rule, format!("rules[2] of {}", file.display()));

        std::fs::write(&file, "rules: [oops").unwrap();
        assert!(!a.reload_if_changed(&file));
        assert!(
            a.authorize(&user, Verb::Start, "team-a").is_ok(),
            "the last good policy stays"
        );
        std::fs::remove_file(&file).unwrap();
        assert!(!a.reload_if_changed(&file));
        assert!(a.authorize(&user, Verb::Start, "team-a").is_ok());
    }

    #[test]
    fn a_bad_file_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        let err = Authorizer::new(Some(&file), vec![]).unwrap_err();
        assert!(matches!(err, PolicyError::Read { .. }), "{err}");
        std::fs::write(
            &file,
            "rules:\n  - {identities: [a], namespaces: [b], verbs: [delete]}\n",
        )
        .unwrap();
        let err = Authorizer::new(Some(&file), vec![]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "rules[0].verbs[0]: unknown verb \"delete\" (one of start, stop, read, watch)"
            ),
            "{err}"
        );
    }
}
