//! Whether a container that exited is started again: the pod's
//! restartPolicy for app and regular init containers (the kubelet's
//! `ShouldContainerBeRestarted` and its init-container rule), always for
//! sidecars. Pure decisions; the flow that acts on them lives elsewhere.
use crate::proto::v1::{ContainerKind, RestartPolicy};

/// What happens after a container exits with `exit_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again (after the crash-loop back-off).
    Restart,
    /// It is done and stays exited (a completed init container, or an app
    /// container the policy does not restart).
    Done,
    /// The pod fails (a regular init container that failed under Never).
    FailPod,
}

/// The decision for a container of `kind` in a pod with `policy`
/// (UNSPECIFIED is Always, as in Kubernetes). Ephemeral containers are never
/// restarted.
pub fn after_exit(kind: ContainerKind, policy: RestartPolicy, exit_code: i32) -> AfterExit {
    let policy = match policy {
        RestartPolicy::Unspecified => RestartPolicy::Always,
        p => p,
    };
    match kind {
        ContainerKind::Sidecar => AfterExit::Restart,
        ContainerKind::Ephemeral => AfterExit::Done,
        ContainerKind::Init => match (exit_code, policy) {
            (0, _) => AfterExit::Done,
            (_, RestartPolicy::Never) => AfterExit::FailPod,
            _ => AfterExit::Restart,
        },
        ContainerKind::App | ContainerKind::Unspecified => match (policy, exit_code) {
            (RestartPolicy::Always, _) => AfterExit::Restart,
            (RestartPolicy::OnFailure, c) if c != 0 => AfterExit::Restart,
            _ => AfterExit::Done,
        },
    }
}

/// The policy's Kubernetes name, for messages.
pub fn policy_name(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::Unspecified | RestartPolicy::Always => "Always",
        RestartPolicy::OnFailure => "OnFailure",
        RestartPolicy::Never => "Never",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AfterExit::*;
    use ContainerKind as K;
    use RestartPolicy as P;

    #[test]
    fn the_kubelet_table() {
        let cases = [
            (K::Init, P::Never, 0, Done),
            (K::Init, P::Never, 1, FailPod),
            (K::Init, P::OnFailure, 1, Restart),
            (K::Init, P::Always, 2, Restart),
            (K::Init, P::Unspecified, 2, Restart),
            (K::Sidecar, P::Never, 0, Restart),
            (K::Sidecar, P::Never, 1, Restart),
            (K::App, P::Always, 0, Restart),
            (K::App, P::Unspecified, 0, Restart),
            (K::App, P::OnFailure, 0, Done),
            (K::App, P::OnFailure, 137, Restart),
            (K::App, P::Never, 1, Done),
            (K::Ephemeral, P::Always, 1, Done),
        ];
        for (kind, policy, code, want) in cases {
            assert_eq!(
                after_exit(kind, policy, code),
                want,
                "{kind:?} {policy:?} {code}"
            );
        }
    }
}
