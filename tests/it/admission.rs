//! Pod Security admission through the real API: the harness's caller
//! (`unix:uid=0`) is granted one level by a policy, and each dangerous pod
//! is refused at baseline and restricted with PERMISSION_DENIED naming the
//! level, the grant and the check, before a single CRI call; the same pods
//! start at privileged, and a pod meeting each level starts at it. The
//! rules one by one are `src/admission/tests.rs`; this is the wiring.

use std::time::Duration;

use crate::common::*;
use crate::hostile::cri_calls;
use podstart::pleg::{PlegConfig, SourceChoice};
use podstart::proto::v1::{
    Capabilities, ContainerPort, Device, Mount, PodSecurityContext, PodSpec, SeccompProfile,
    SecurityContext, StartContainerRequest, seccomp_profile, start_event::Payload,
};
use tonic::Code;

async fn harness(level: &str) -> Harness {
    Harness::with(|t| {
        // One relist at start, none while the rows run: every CRI call
        // counted would be a request's.
        t.pleg = PlegConfig {
            source: SourceChoice::Relist,
            relist_period: Duration::from_secs(3600),
            ..PlegConfig::default()
        };
        t.authz_policy = Some(format!(
            "rules:\n  - identities: [\"unix:uid=0\"]\n    namespaces: [\"*\"]\n    verbs: [start, stop, read, watch]\n    podSecurity: {level}\n"
        ));
    })
    .await
}

fn security(f: impl FnOnce(&mut SecurityContext)) -> impl FnOnce(&mut PodSpec) {
    move |p| f(p.containers[0].security_context.get_or_insert_default())
}

/// A dangerous pod: what it sets, how, and the Kubernetes check that
/// refuses it at baseline.
type Danger = (&'static str, Box<dyn FnOnce(&mut PodSpec)>, &'static str);

fn dangerous() -> Vec<Danger> {
    vec![
        (
            "privileged",
            Box::new(security(|s| s.privileged = Some(true))),
            "privileged (container \"app\" must not set securityContext.privileged=true)",
        ),
        (
            "hostNetwork",
            Box::new(|p| p.host_network = true),
            "host namespaces (hostNetwork=true)",
        ),
        (
            "hostPID",
            Box::new(|p| p.host_pid = true),
            "host namespaces (hostPID=true)",
        ),
        (
            "hostIPC",
            Box::new(|p| p.host_ipc = true),
            "host namespaces (hostIPC=true)",
        ),
        (
            "hostPath /",
            Box::new(|p| {
                p.containers[0].mounts.push(Mount {
                    container_path: "/host".into(),
                    host_path: "/".into(),
                    ..Default::default()
                })
            }),
            "hostPath volumes",
        ),
        (
            "/dev/mem",
            Box::new(|p| {
                p.containers[0].devices.push(Device {
                    container_path: "/dev/mem".into(),
                    host_path: "/dev/mem".into(),
                    permissions: "r".into(),
                })
            }),
            "hostPath volumes",
        ),
        (
            "SYS_ADMIN",
            Box::new(security(|s| {
                s.capabilities = Some(Capabilities {
                    add: vec!["SYS_ADMIN".into()],
                    drop: vec![],
                })
            })),
            "non-default capabilities",
        ),
        (
            "seccomp Unconfined",
            Box::new(|p| {
                p.security_context = Some(PodSecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        r#type: seccomp_profile::Type::Unconfined as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }),
            "seccompProfile",
        ),
        (
            "hostPort 10250",
            Box::new(|p| {
                p.containers[0].ports.push(ContainerPort {
                    container_port: 80,
                    host_port: 10250,
                    ..Default::default()
                })
            }),
            "hostPort",
        ),
        (
            "kernel.core_pattern",
            Box::new(|p| {
                p.sysctls
                    .insert("kernel.core_pattern".into(), "|/tmp/x".into());
            }),
            "forbidden sysctls",
        ),
    ]
}

fn denied_as(status: tonic::Status, level: &str, check: &str, what: &str) {
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{what}: {}",
        status.message()
    );
    let m = status.message();
    assert!(
        m.contains(&format!("violates PodSecurity \"{level}:latest\"")),
        "{what}: {m}"
    );
    assert!(
        m.contains("granted by rules[0]"),
        "{what}: the grant is named: {m}"
    );
    assert!(m.contains(check), "{what}: {m} should name {check:?}");
}

#[tokio::test]
async fn baseline_and_restricted_refuse_dangerous_pods_before_the_runtime() {
    for level in ["baseline", "restricted"] {
        let h = harness(level).await;
        h.starter.pleg().synced().await;
        let before = cri_calls(&h);
        for (i, (what, set, check)) in dangerous().into_iter().enumerate() {
            let mut p = pod("danger", &format!("uid-danger-{i}"), vec![container("app")]);
            set(&mut p);
            let err = h.start(request(p)).await.expect_err(what);
            // At restricted the baseline checks stay, or are replaced by
            // stricter ones of the same field.
            let check = match (level, check) {
                ("restricted", "hostPath volumes") => "restricted volume types",
                ("restricted", "non-default capabilities") => "unrestricted capabilities",
                _ => check,
            };
            denied_as(err, level, check, what);
        }
        assert_eq!(
            cri_calls(&h),
            before,
            "{level}: no call reached the runtime"
        );
    }
}

#[tokio::test]
async fn restricted_refuses_what_baseline_admits_and_admits_a_hardened_pod() {
    let h = harness("restricted").await;
    h.starter.pleg().synced().await;
    let before = cri_calls(&h);
    let plain = pod("plain", "uid-plain", vec![container("app")]);
    let err = h.start(request(plain.clone())).await.unwrap_err();
    for check in [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ] {
        denied_as(err.clone(), "restricted", check, "a plain pod");
    }
    assert_eq!(cri_calls(&h), before, "no call reached the runtime");

    let mut hardened = plain;
    hardened.metadata.as_mut().unwrap().uid = "uid-hardened".into();
    hardened.security_context = Some(PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(1000),
        seccomp_profile: Some(SeccompProfile {
            r#type: seccomp_profile::Type::RuntimeDefault as i32,
            ..Default::default()
        }),
        ..Default::default()
    });
    hardened.containers[0].security_context = Some(SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: vec![],
            drop: vec!["ALL".into()],
        }),
        ..Default::default()
    });
    let events = h
        .start(request(hardened))
        .await
        .expect("a hardened pod starts");
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));

    // Baseline admits the plain pod.
    let b = harness("baseline").await;
    let events = b
        .start(request(pod("plain", "uid-plain-b", vec![container("app")])))
        .await
        .expect("baseline admits a plain pod");
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
}

#[tokio::test]
async fn privileged_admits_the_dangerous_pods_and_ephemeral_containers_are_checked() {
    let h = harness("privileged").await;
    for (i, (what, set, _)) in dangerous().into_iter().enumerate() {
        let mut p = pod(
            &format!("danger-{i}"),
            &format!("uid-priv-{i}"),
            vec![container("app")],
        );
        set(&mut p);
        let events = h.start(request(p)).await.expect(what);
        assert!(
            matches!(terminal(&events), Payload::PodStarted(_)),
            "{what}: {:?}",
            terminal(&events)
        );
    }

    // An ephemeral container into a running pod is checked at the
    // caller's level too.
    let b = harness("baseline").await;
    let events = b
        .start(request(pod("target", "uid-target", vec![container("app")])))
        .await
        .unwrap();
    assert!(matches!(terminal(&events), Payload::PodStarted(_)));
    let mut debug = container("debug");
    debug.security_context = Some(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    });
    let err = b
        .client
        .clone()
        .start_container(StartContainerRequest {
            pod_uid: "uid-target".into(),
            container: Some(debug),
            credentials: vec![],
        })
        .await
        .expect_err("a privileged ephemeral container at baseline");
    denied_as(err, "baseline", "privileged", "ephemeral");
}
