//! The lab benches' pods: as a StartPodRequest for podstart, as parts for
//! a direct client, as Pod YAML for `podman kube play`.
use podstart::proto::v1::{
    AppStartMode, Container, ExecAction, Handler, Lifecycle, PodMetadata, PodSpec, PullPolicy,
    StartOptions, StartPodRequest, handler::Action,
};

/// The pods, as the bench names them.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    One,
    InitTwoApp,
    InitTwoAppParallel,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::One => "1-container",
            Kind::InitTwoApp => "init-2-app",
            Kind::InitTwoAppParallel => "init-2-app-parallel",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::One => "1 container (`sleep 3600`)",
            Kind::InitTwoApp => "1 init (`true`) + 2 app, PostStart exec on the first",
            Kind::InitTwoAppParallel => {
                "1 init + 2 app, PostStart exec; podstart app_start = PARALLEL"
            }
        }
    }
}

/// One container of a bench pod: name, command, whether it is an init
/// container, whether it has the PostStart hook.
pub(crate) struct Part {
    pub(crate) name: &'static str,
    pub(crate) command: &'static [&'static str],
    pub(crate) init: bool,
    pub(crate) hook: bool,
}

pub(crate) const HOOK: &[&str] = &["sh", "-c", "echo ok"];
pub(crate) const SLEEP: &[&str] = &["sleep", "3600"];

pub(crate) fn parts(kind: Kind) -> Vec<Part> {
    match kind {
        Kind::One => vec![Part {
            name: "app",
            command: SLEEP,
            init: false,
            hook: false,
        }],
        Kind::InitTwoApp | Kind::InitTwoAppParallel => vec![
            Part {
                name: "init",
                command: &["true"],
                init: true,
                hook: false,
            },
            Part {
                name: "app-1",
                command: SLEEP,
                init: false,
                hook: true,
            },
            Part {
                name: "app-2",
                command: SLEEP,
                init: false,
                hook: false,
            },
        ],
    }
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The pod as a StartPodRequest.
pub(crate) fn request(kind: Kind, name: &str, uid: &str, image: &str) -> StartPodRequest {
    let mut spec = PodSpec {
        metadata: Some(PodMetadata {
            name: name.into(),
            namespace: super::NAMESPACE.into(),
            uid: uid.into(),
            ..Default::default()
        }),
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    };
    for p in parts(kind) {
        let mut c = Container {
            name: p.name.into(),
            image: image.into(),
            command: strings(p.command),
            ..Default::default()
        };
        c.set_image_pull_policy(PullPolicy::IfNotPresent);
        if p.hook {
            c.lifecycle = Some(Lifecycle {
                post_start: Some(Handler {
                    action: Some(Action::Exec(ExecAction {
                        command: strings(HOOK),
                    })),
                }),
                pre_stop: None,
            });
        }
        if p.init {
            spec.init_containers.push(c);
        } else {
            spec.containers.push(c);
        }
    }
    let mut options = StartOptions::default();
    if kind == Kind::InitTwoAppParallel {
        options.set_app_start(AppStartMode::Parallel);
    }
    StartPodRequest {
        pod: Some(spec),
        options: Some(options),
        ..Default::default()
    }
}

/// The pod as Pod YAML (podman has no app-start option: the parallel kind
/// renders as the sequential one). restartPolicy OnFailure: podman 4.3
/// applies a pod's Always to its init containers too, restarting `true`
/// without end while `kube play` waits out conmon's timeout (20 s); the app
/// containers never exit, so the policy changes nothing else here.
pub(crate) fn yaml(kind: Kind, name: &str, image: &str) -> String {
    let list = |v: &[&str]| {
        let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut init = String::new();
    let mut apps = String::new();
    for p in parts(kind) {
        let mut c = format!(
            "  - name: {}\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: {}\n",
            p.name,
            list(p.command)
        );
        if p.hook {
            c.push_str(&format!(
                "    lifecycle:\n      postStart:\n        exec:\n          command: {}\n",
                list(HOOK)
            ));
        }
        if p.init { &mut init } else { &mut apps }.push_str(&c);
    }
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: OnFailure\n  terminationGracePeriodSeconds: 0\n"
    );
    if !init.is_empty() {
        y.push_str("  initContainers:\n");
        y.push_str(&init);
    }
    y.push_str("  containers:\n");
    y.push_str(&apps);
    y
}
