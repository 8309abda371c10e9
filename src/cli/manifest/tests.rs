//! Whole manifests: every field of a full pod, JSON input, documents and
//! their kinds, YAML syntax, files and image pull secrets.

use super::load_manifest;
use super::test_support::*;
use crate::proto::v1::handler::Action;

const FULL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  uid: 2d8f7c1a-5b7e-4c1f-9a0e-6f3b2a1c9d84
  labels:
    app: web
    app.kubernetes.io/part-of: shop
  annotations:
    note: first pod
spec:
  restartPolicy: OnFailure
  hostname: web-0
  subdomain: web
  hostNetwork: false
  hostPID: true
  hostIPC: true
  terminationGracePeriodSeconds: 45
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [shop.svc.cluster.local, svc.cluster.local]
    options:
      - name: ndots
        value: "5"
      - name: edns0
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    supplementalGroups: [4000, 4001]
    fsGroup: 2000
    seccompProfile:
      type: RuntimeDefault
    sysctls:
      - name: net.core.somaxconn
        value: "1024"
  volumes:
    - name: data
      hostPath:
        path: /srv/web/data
    - name: config
      hostPath:
        path: /srv/web/config/
  initContainers:
    - name: migrate
      image: registry.example/web-migrate:1.4
      command: [/bin/migrate]
      args: [--to, latest]
      env:
        - name: DB_PATH
          value: /data/db
      volumeMounts:
        - name: data
          mountPath: /data
    - name: log-shipper
      image: registry.example/shipper:2.0
      restartPolicy: Always
  containers:
    - name: app
      image: registry.example/web:1.4
      imagePullPolicy: IfNotPresent
      workingDir: /app
      env:
        - name: PORT
          value: "8080"
        - name: GREETING
          value: hello $(PORT)
        - name: EMPTY
      ports:
        - name: http
          containerPort: 8080
          hostPort: 80
          hostIP: 127.0.0.1
          protocol: TCP
        - containerPort: 5353
          protocol: UDP
      resources:
        requests: {cpu: 250m, memory: 128Mi}
        limits: {cpu: "1", memory: 1Gi}
      securityContext:
        privileged: false
        runAsUser: 1001
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          add: [NET_BIND_SERVICE]
          drop: [ALL]
        seccompProfile:
          type: Unconfined
      volumeMounts:
        - name: data
          mountPath: /var/lib/web
          readOnly: true
          mountPropagation: HostToContainer
        - name: config
          mountPath: /etc/web/app.conf
          subPath: app.conf
          mountPropagation: None
      lifecycle:
        postStart:
          exec:
            command: [/bin/sh, -c, warm-cache]
        preStop:
          sleep:
            seconds: 5
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      terminationMessagePolicy: FallbackToLogsOnError
    - name: metrics
      image: registry.example/exporter:0.9
      args: [--listen=:9100]
      ports:
        - containerPort: 9100
      resources:
        limits: {cpu: 0.5, memory: 64Mi}
      lifecycle:
        preStop:
          httpGet:
            scheme: HTTP
            path: /quit
            port: 9100
            httpHeaders:
              - name: X-Reason
                value: stop
      startupProbe:
        tcpSocket:
          port: 9100
        initialDelaySeconds: 1
        timeoutSeconds: 3
      tty: true
      stdin: true
      stdinOnce: true
      terminationMessagePath: /tmp/termination
      volumeMounts:
        - name: data
          mountPath: /data
          mountPropagation: Bidirectional
  ephemeralContainers:
    - name: debugger
      image: busybox:1.36
      command: [sh]
      targetContainerName: app
      stdin: true
      tty: true
"#;

#[test]
fn full_pod_converts_field_by_field() {
    let manifest = parse_manifest(FULL_POD).expect("converts");
    assert_eq!(manifest.warnings, Vec::<String>::new());
    assert!(manifest.request.credentials.is_empty());
    assert_eq!(manifest.request.options, None);
    let spec = pod_spec(&manifest);

    assert_eq!(
        spec.metadata,
        Some(PodMetadata {
            name: "web".into(),
            namespace: "shop".into(),
            uid: "2d8f7c1a-5b7e-4c1f-9a0e-6f3b2a1c9d84".into(),
            attempt: 0,
            labels: string_map(&[("app", "web"), ("app.kubernetes.io/part-of", "shop")]),
            annotations: string_map(&[("note", "first pod")]),
        })
    );
    assert_eq!(spec.restart_policy, RestartPolicy::OnFailure as i32);
    assert_eq!(spec.hostname, "web-0");
    assert_eq!(spec.subdomain, "web");
    assert!(!spec.host_network);
    assert!(spec.host_pid);
    assert!(spec.host_ipc);
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    assert_eq!(spec.runtime_handler, "");
    assert_eq!(spec.cgroup_parent, "");
    assert_eq!(
        spec.dns_config,
        Some(DnsConfig {
            servers: strings(&["10.96.0.10"]),
            searches: strings(&["shop.svc.cluster.local", "svc.cluster.local"]),
            options: strings(&["ndots:5", "edns0"]),
        })
    );
    assert_eq!(
        spec.security_context,
        Some(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            run_as_non_root: Some(true),
            supplemental_groups: vec![4000, 4001],
            fs_group: Some(2000),
            seccomp_profile: Some(SeccompProfile {
                r#type: seccomp_profile::Type::RuntimeDefault as i32,
                localhost_profile: String::new(),
            }),
            ..Default::default()
        })
    );
    assert_eq!(spec.sysctls, string_map(&[("net.core.somaxconn", "1024")]));

    assert_eq!(spec.init_containers.len(), 2);
    assert_eq!(
        spec.init_containers[0],
        Container {
            name: "migrate".into(),
            image: "registry.example/web-migrate:1.4".into(),
            command: strings(&["/bin/migrate"]),
            args: strings(&["--to", "latest"]),
            env: vec![env("DB_PATH", "/data/db")],
            mounts: vec![mount("/data", "data")],
            ..Default::default()
        }
    );
    assert_eq!(
        spec.init_containers[1],
        Container {
            name: "log-shipper".into(),
            image: "registry.example/shipper:2.0".into(),
            restart_policy: ContainerRestartPolicy::Always as i32,
            ..Default::default()
        }
    );

    assert_eq!(spec.containers.len(), 2);
    assert_eq!(
        spec.containers[0],
        Container {
            name: "app".into(),
            image: "registry.example/web:1.4".into(),
            image_pull_policy: PullPolicy::IfNotPresent as i32,
            working_dir: "/app".into(),
            env: vec![
                env("PORT", "8080"),
                env("GREETING", "hello $(PORT)"),
                env("EMPTY", ""),
            ],
            mounts: vec![
                Mount {
                    read_only: true,
                    propagation: MountPropagation::HostToContainer as i32,
                    ..mount("/var/lib/web", "data")
                },
                Mount {
                    propagation: MountPropagation::Private as i32,
                    sub_path: "app.conf".into(),
                    ..mount("/etc/web/app.conf", "config")
                },
            ],
            ports: vec![
                ContainerPort {
                    name: "http".into(),
                    container_port: 8080,
                    host_port: 80,
                    host_ip: "127.0.0.1".into(),
                    protocol: Protocol::Tcp as i32,
                },
                ContainerPort {
                    container_port: 5353,
                    protocol: Protocol::Udp as i32,
                    ..Default::default()
                },
            ],
            resources: Some(Resources {
                cpu_request_millis: 250,
                cpu_limit_millis: 1000,
                memory_request_bytes: 128 << 20,
                memory_limit_bytes: 1 << 30,
            }),
            security_context: Some(SecurityContext {
                privileged: Some(false),
                run_as_user: Some(1001),
                run_as_group: None,
                run_as_non_root: None,
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    add: strings(&["NET_BIND_SERVICE"]),
                    drop: strings(&["ALL"]),
                }),
                seccomp_profile: Some(SeccompProfile {
                    r#type: seccomp_profile::Type::Unconfined as i32,
                    localhost_profile: String::new(),
                }),
                ..Default::default()
            }),
            lifecycle: Some(Lifecycle {
                post_start: Some(Handler {
                    action: Some(Action::Exec(ExecAction {
                        command: strings(&["/bin/sh", "-c", "warm-cache"]),
                    })),
                }),
                pre_stop: Some(Handler {
                    action: Some(Action::Sleep(SleepAction { seconds: 5 })),
                }),
            }),
            startup_probe: Some(Probe {
                handler: Some(Handler {
                    action: Some(Action::HttpGet(HttpGetAction {
                        port: "http".into(),
                        path: "/healthz".into(),
                        ..Default::default()
                    })),
                }),
                initial_delay_seconds: 0,
                period_seconds: 2,
                timeout_seconds: 1,
                success_threshold: 1,
                failure_threshold: 30,
            }),
            termination_message_policy: TerminationMessagePolicy::FallbackToLogsOnError as i32,
            ..Default::default()
        }
    );
    assert_eq!(
        spec.containers[1],
        Container {
            name: "metrics".into(),
            image: "registry.example/exporter:0.9".into(),
            args: strings(&["--listen=:9100"]),
            ports: vec![ContainerPort {
                container_port: 9100,
                ..Default::default()
            }],
            // Requests default to the limits; a bare 0.5 is half a core.
            resources: Some(Resources {
                cpu_request_millis: 500,
                cpu_limit_millis: 500,
                memory_request_bytes: 64 << 20,
                memory_limit_bytes: 64 << 20,
            }),
            lifecycle: Some(Lifecycle {
                post_start: None,
                pre_stop: Some(Handler {
                    action: Some(Action::HttpGet(HttpGetAction {
                        scheme: "HTTP".into(),
                        host: String::new(),
                        port: "9100".into(),
                        path: "/quit".into(),
                        headers: vec![HttpHeader {
                            name: "X-Reason".into(),
                            value: "stop".into(),
                        }],
                    })),
                }),
            }),
            startup_probe: Some(Probe {
                handler: Some(Handler {
                    action: Some(Action::TcpSocket(TcpSocketAction {
                        host: String::new(),
                        port: "9100".into(),
                    })),
                }),
                initial_delay_seconds: 1,
                period_seconds: 10,
                timeout_seconds: 3,
                success_threshold: 1,
                failure_threshold: 3,
            }),
            tty: true,
            stdin: true,
            stdin_once: true,
            termination_message_path: "/tmp/termination".into(),
            mounts: vec![Mount {
                propagation: MountPropagation::Bidirectional as i32,
                ..mount("/data", "data")
            }],
            ..Default::default()
        }
    );

    assert_eq!(
        spec.ephemeral_containers,
        vec![Container {
            name: "debugger".into(),
            image: "busybox:1.36".into(),
            command: strings(&["sh"]),
            target_container_name: "app".into(),
            stdin: true,
            tty: true,
            ..Default::default()
        }]
    );
}

#[test]
fn json_input_converts() {
    let text = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"j\", \"uid\": \"u-1\"},\n\t\"spec\": {\n\t\t\"containers\": [{\"name\": \"c\", \"image\": \"nginx\", \"ports\": [{\"containerPort\": 80}], \"resources\": {\"limits\": {\"memory\": 1e3, \"cpu\": \"100m\"}}}]\n\t}\n}\n";
    let manifest = parse_manifest(text).expect("converts");
    let spec = pod_spec(&manifest);
    let metadata = spec.metadata.as_ref().expect("metadata");
    assert_eq!(
        (
            metadata.name.as_str(),
            metadata.namespace.as_str(),
            metadata.uid.as_str()
        ),
        ("j", "default", "u-1")
    );
    assert_eq!(spec.containers.len(), 1);
    let container = &spec.containers[0];
    assert_eq!(
        (container.name.as_str(), container.image.as_str()),
        ("c", "nginx")
    );
    assert_eq!(container.ports[0].container_port, 80);
    assert_eq!(
        container.resources,
        Some(Resources {
            cpu_request_millis: 100,
            cpu_limit_millis: 100,
            memory_request_bytes: 1000,
            memory_limit_bytes: 1000,
        })
    );
}

#[test]
fn secrets_and_empty_documents_are_skipped() {
    let text = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pull}\ntype: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: e30=}\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: x}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: other}\n";
    let manifest = parse_manifest(text).expect("converts");
    assert_eq!(manifest.warnings, Vec::<String>::new());
    let spec = pod_spec(&manifest);
    assert_eq!(spec.metadata.as_ref().map(|m| m.name.as_str()), Some("p"));
    assert_eq!(spec.containers[0].image, "i");
}

#[test]
fn document_level_errors() {
    let pod = pod_yaml("{containers: [{name: c, image: i}]}");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "NoPod"),
        ("---\n---\n".into(), "NoPod"),
        (secret.into(), "NoPod"),
        (format!("{pod}---\n{pod}"), "MultiplePods"),
        (
            format!("{pod}---\napiVersion: v1\nkind: Service\nmetadata: {{name: c}}\n"),
            "UnexpectedKind Service",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\n".into(),
            "UnexpectedKind Deployment",
        ),
    ];
    for (text, want) in cases {
        let got = match parse_manifest(&text) {
            Err(ManifestError::NoPod) => "NoPod".to_owned(),
            Err(ManifestError::MultiplePods) => "MultiplePods".to_owned(),
            Err(ManifestError::UnexpectedKind { kind }) => format!("UnexpectedKind {kind}"),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want, "manifest:\n{text}");
    }
}

#[test]
fn document_errors_name_the_field_path() {
    // (manifest, path, start of the rule)
    let cases: &[(&str, &str, &str)] = &[
        ("apiVersion: v1\n", "kind", "missing in document 1"),
        (
            "---\n- a\n- b\n",
            "document 1",
            "expected a Kubernetes object",
        ),
    ];
    assert_field_errors(cases);
}

#[test]
fn malformed_yaml_reports_its_location() {
    let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c\n";
    let error = parse_manifest(text).expect_err("malformed");
    let ManifestError::Yaml(inner) = &error else {
        panic!("expected a YAML error, got {error:?}");
    };
    assert!(inner.location().is_some(), "{inner}");
    assert!(error.to_string().contains("line"), "{error}");

    let duplicate = "apiVersion: v1\nkind: Pod\nkind: Pod\n";
    assert!(matches!(
        parse_manifest(duplicate),
        Err(ManifestError::Yaml(_))
    ));
}

#[test]
fn every_field_error_is_reported_at_once_one_per_line() {
    let error = parse_manifest(&pod_yaml(
        "{volumes: [{name: v, persistentVolumeClaim: {claimName: c}}, {name: w, csi: {driver: d}}], \
         containers: [{name: a, tty: maybe, volumeDevices: []}, \
         {name: b, envFrom: [{secretRef: {name: s}}], volumeMounts: [{name: v, mountPath: /v, subPathExpr: x}]}]}",
    ))
    .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "spec.volumes[0].persistentVolumeClaim: not supported: podstart provisions no persistent \
         volumes (use hostPath or emptyDir)\n\
         spec.volumes[1].csi: not supported: podstart takes emptyDir, configMap, secret, projected, \
         downwardAPI and hostPath volumes\n\
         spec.containers[0].tty: expected true or false, found a string\n\
         spec.containers[0].volumeDevices: not supported\n\
         spec.containers[1].envFrom[0].secretRef: secret \"s\" not found (no Secret of that name \
         in namespace \"default\" among the manifest's documents)\n\
         spec.containers[1].volumeMounts[0].subPathExpr: not supported: expand the variables into \
         subPath"
    );
}

#[test]
fn files_given_together_are_one_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pod = dir.path().join("pod.yaml");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &pod,
        pod_yaml("{containers: [{name: a, image: i, env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: x}}}]}]}"),
    )
    .expect("write");
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {x: from-c}\n",
    )
    .expect("write");
    let manifest = super::load_manifests(&[pod.clone(), config]).expect("loads");
    assert_eq!(
        pod_spec(&manifest).containers[0].env,
        vec![env("X", "from-c")]
    );
    let (path, rule) = match super::load_manifests(std::slice::from_ref(&pod)) {
        Err(ManifestError::Fields(errors)) => (errors.0[0].path.clone(), errors.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(path, "spec.containers[0].env[0].valueFrom.configMapKeyRef");
    assert!(rule.starts_with("configmap \"c\" not found"), "{rule}");
    assert!(matches!(
        super::load_manifests(&[pod.clone(), pod]),
        Err(ManifestError::MultiplePods)
    ));
}

#[test]
fn yaml_anchors_and_merge_keys_are_resolved() {
    let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - &base
      name: a
      image: i
      env: [{name: MODE, value: fast}]
    - <<: *base
      name: b
"#;
    let manifest = parse_manifest(text).expect("converts");
    let containers = &pod_spec(&manifest).containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1].name, "b");
    assert_eq!(containers[1].image, "i");
    assert_eq!(containers[1].env, vec![env("MODE", "fast")]);
}

#[test]
fn load_manifest_reads_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, FULL_POD).expect("write");
    let manifest = load_manifest(&path).expect("loads");
    assert_eq!(pod_spec(&manifest).containers.len(), 2);

    let missing = dir.path().join("missing.yaml");
    match load_manifest(&missing) {
        Err(ManifestError::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn image_pull_secrets_become_credentials() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: x}\n\
            spec:\n  imagePullSecrets: [{name: lab}, {name: absent}]\n  containers: [{name: c, image: i}]\n\
            ---\napiVersion: v1\nkind: Secret\nmetadata: {name: lab}\ntype: kubernetes.io/dockerconfigjson\n\
            stringData:\n  .dockerconfigjson: '{\"auths\": {\"127.0.0.1:5402\": {\"username\": \"labuser\", \"password\": \"labpass\"}}}'\n";
    let manifest = parse_manifest(text).unwrap();
    let creds = &manifest.request.credentials;
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].server, "127.0.0.1:5402");
    assert_eq!(creds[0].username, "labuser");
    assert_eq!(
        manifest.warnings,
        vec!["spec.imagePullSecrets[1]: Secret \"absent\" is not in the manifest; ignored"]
    );
    let opaque = text.replace("kubernetes.io/dockerconfigjson", "Opaque");
    assert!(matches!(
        parse_manifest(&opaque),
        Err(ManifestError::PullSecret(_))
    ));
}
