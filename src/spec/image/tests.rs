use super::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn r(reg: &str, repo: &str, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
    ImageRef {
        registry: reg.into(),
        repository: repo.into(),
        tag: tag.map(Into::into),
        digest: digest.map(Into::into),
    }
}

#[test]
fn parses_and_normalises() {
    let cases: Vec<(String, ImageRef)> = vec![
        (
            "busybox".into(),
            r("docker.io", "library/busybox", None, None),
        ),
        (
            "busybox:1.36".into(),
            r("docker.io", "library/busybox", Some("1.36"), None),
        ),
        (
            "library/busybox:latest".into(),
            r("docker.io", "library/busybox", Some("latest"), None),
        ),
        (
            "docker.io/busybox".into(),
            r("docker.io", "library/busybox", None, None),
        ),
        (
            "index.docker.io/foo/bar".into(),
            r("docker.io", "foo/bar", None, None),
        ),
        ("foo/bar".into(), r("docker.io", "foo/bar", None, None)),
        (
            "localhost/lab/busybox".into(),
            r("localhost", "lab/busybox", None, None),
        ),
        (
            "localhost:5000/x:v1".into(),
            r("localhost:5000", "x", Some("v1"), None),
        ),
        (
            "127.0.0.1:5000/lab/busybox:1".into(),
            r("127.0.0.1:5000", "lab/busybox", Some("1"), None),
        ),
        (
            "registry.k8s.io/pause:3.9".into(),
            r("registry.k8s.io", "pause", Some("3.9"), None),
        ),
        ("[::1]:5000/x".into(), r("[::1]:5000", "x", None, None)),
        ("Registry/x".into(), r("Registry", "x", None, None)),
        // "localhost:5000" alone is the docker.io repo "localhost", tag "5000".
        (
            "localhost:5000".into(),
            r("docker.io", "library/localhost", Some("5000"), None),
        ),
        (
            format!("busybox@{D}"),
            r("docker.io", "library/busybox", None, Some(D)),
        ),
        (
            format!("q.io/a/b:v2@{D}"),
            r("q.io", "a/b", Some("v2"), Some(D)),
        ),
        (
            "a/b__c.d-e--f_g".into(),
            r("docker.io", "a/b__c.d-e--f_g", None, None),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse_image(&input).as_ref(), Ok(&want), "{input}");
    }
}

#[test]
fn rejects_invalid() {
    let hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let long = format!("a/{}", "b".repeat(254));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        (hex64.into(), "64-byte"),
        ("Busybox".into(), "lowercase"),
        ("foo/Bar".into(), "lowercase"),
        ("busybox:".into(), "invalid tag"),
        ("busybox:-x".into(), "invalid tag"),
        (format!("busybox:{}", "t".repeat(129)), "invalid tag"),
        ("busybox@sha256:abc".into(), "digest"),
        (format!("busybox@md5:{}", "a".repeat(32)), "unsupported"),
        (
            format!("busybox@{}", D.to_uppercase().replace("SHA", "sha")),
            "lower-case",
        ),
        ("bus box".into(), "invalid repository"),
        ("busybox/".into(), "invalid repository"),
        ("a//b".into(), "invalid repository"),
        ("a/-b".into(), "invalid repository"),
        ("a/b.".into(), "invalid repository"),
        ("a/b..c".into(), "invalid repository"),
        ("a/b___c".into(), "invalid repository"),
        ("localhost:port/x".into(), "domain"),
        ("-a.io/x".into(), "domain"),
        ("[zz]:5000/x".into(), "domain"),
        (long, "255"),
    ];
    for (input, reason) in cases {
        match parse_image(&input) {
            Ok(r) => panic!("{input:?} parsed as {r:?}"),
            Err(e) => {
                assert_eq!(e.image, input);
                assert!(e.reason.contains(reason), "{input:?}: {}", e.reason);
            }
        }
    }
}

#[test]
fn default_tag() {
    let cases = [
        ("busybox", "busybox:latest"),
        ("localhost/x/busybox", "localhost/x/busybox:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("busybox:latest", "busybox:latest"),
        (&format!("busybox@{D}"), &format!("busybox@{D}")),
        ("Not Valid", "Not Valid"),
    ];
    for (input, want) in cases {
        assert_eq!(with_default_tag(input), want, "{input}");
    }
}

#[test]
fn pull_policy_defaults() {
    use PullPolicy::*;
    let cases = [
        (Unspecified, "busybox".to_string(), Always),
        (Unspecified, "busybox:latest".into(), Always),
        (Unspecified, "localhost:5000/x".into(), Always),
        (Unspecified, "localhost:5000/x:1".into(), IfNotPresent),
        (Unspecified, "busybox:1.36".into(), IfNotPresent),
        (Unspecified, format!("busybox@{D}"), IfNotPresent),
        (Unspecified, format!("busybox:latest@{D}"), Always),
        (Never, "busybox".into(), Never),
        (Always, "busybox:1".into(), Always),
        (IfNotPresent, "busybox".into(), IfNotPresent),
    ];
    for (policy, image, want) in cases {
        assert_eq!(
            effective_pull_policy(policy, &image),
            want,
            "{policy:?} {image}"
        );
    }
}

#[test]
fn registry_host_drops_port() {
    let cases = [
        ("busybox", "docker.io"),
        ("localhost:5000/x", "localhost"),
        ("127.0.0.1:5000/x", "127.0.0.1"),
        ("q.io/x", "q.io"),
        ("[::1]:5000/x", "::1"),
    ];
    for (input, want) in cases {
        let r = parse_image(input).expect("valid");
        assert_eq!(r.registry_host(), want, "{input}");
    }
    let r = parse_image("busybox").expect("valid");
    assert_eq!(r.full_name(), "docker.io/library/busybox");
}
