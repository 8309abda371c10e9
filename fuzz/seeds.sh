#!/usr/bin/env bash
# seeds.sh — writes the seed corpus of the start_pod_request target,
# fuzz/corpus/start_pod_request/*.pb: StartPodRequests in protobuf text
# format below, encoded by protoc against proto/podstart/v1/podstart.proto.
# Most are valid requests that reach the rarer parts of conversion (every
# container kind, hooks, ports, security contexts, DNS, sysctls, expansion);
# the last ones sit at the edges of validation (a uid of "..", NUL bytes,
# extreme numbers, unknown enum values). Run it again when the API changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/start_pod_request
mkdir -p "$out"
seed() {
  protoc --proto_path=proto --encode=podstart.v1.StartPodRequest \
    podstart/v1/podstart.proto >"$out/$1.pb"
}
meta() { echo "metadata { name: \"$1\" namespace: \"default\" uid: \"uid-$1\" }"; }

seed minimal <<EOF
pod { $(meta minimal) containers { name: "app" image: "busybox:1.36" } }
EOF

seed expansion <<EOF
pod { $(meta expansion) containers {
  name: "app" image: "busybox"
  env { name: "A" value: "a" } env { name: "B" value: "\$(A)-\$(A)" }
  env { name: "C" value: "\$(B)\$\$(B)\$(NOPE)\$" } env { name: "A" value: "again-\$(A)" }
  command: "/bin/\$(A)" command: "-c" args: "echo \$(C) \$\$(C) \$("
} }
EOF

seed lifecycle <<EOF
pod { $(meta lifecycle) termination_grace_period_seconds: 5 containers {
  name: "web" image: "registry.example:5000/team/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  image_pull_policy: PULL_POLICY_IF_NOT_PRESENT
  ports { name: "http" container_port: 8080 host_port: 30080 host_ip: "127.0.0.1" protocol: PROTOCOL_UDP }
  lifecycle {
    post_start { exec { command: "true" } }
    pre_stop { http_get { scheme: "HTTP" port: "http" path: "/quit" headers { name: "X-Stop" value: "1" } } }
  }
  termination_message_path: "/tmp/msg" termination_message_policy: TERMINATION_MESSAGE_POLICY_FALLBACK_TO_LOGS_ON_ERROR
} }
EOF

seed kinds <<EOF
pod { $(meta kinds) restart_policy: RESTART_POLICY_ON_FAILURE
  init_containers { name: "init" image: "busybox" }
  init_containers { name: "proxy" image: "envoy:v1" restart_policy: CONTAINER_RESTART_POLICY_ALWAYS
    startup_probe { handler { sleep { seconds: 1 } } period_seconds: 1 failure_threshold: 3 }
    lifecycle { pre_stop { sleep { seconds: 2 } } } }
  containers { name: "app" image: "app" }
  ephemeral_containers { name: "debug" image: "busybox" target_container_name: "app" stdin: true tty: true }
}
options { app_start: APP_START_MODE_PARALLEL init_timeout_seconds: 30 }
EOF

seed secure <<EOF
pod { $(meta secure)
  security_context { run_as_user: 1000 run_as_group: 1000 run_as_non_root: true
    supplemental_groups: 2000 supplemental_groups: 3000 fs_group: 2000
    seccomp_profile { type: TYPE_RUNTIME_DEFAULT } }
  containers { name: "app" image: "app:1"
    resources { cpu_request_millis: 250 cpu_limit_millis: 500 memory_request_bytes: 67108864 memory_limit_bytes: 134217728 }
    security_context { privileged: false run_as_user: 1000 read_only_root_filesystem: true allow_privilege_escalation: false
      capabilities { add: "NET_BIND_SERVICE" drop: "ALL" }
      seccomp_profile { type: TYPE_LOCALHOST localhost_profile: "profiles/app.json" } }
    mounts { container_path: "/data" host_path: "/var/lib/app" read_only: true
      propagation: MOUNT_PROPAGATION_HOST_TO_CONTAINER selinux_relabel: true }
    devices { container_path: "/dev/fuse" host_path: "/dev/fuse" }
  }
}
credentials { server: "registry.example:5000" username: "u" password: "p" }
EOF

seed network <<EOF
pod { $(meta network) hostname: "host-name" subdomain: "sub" runtime_handler: "runc" cgroup_parent: "kubepods.slice"
  dns_config { servers: "10.0.0.10" searches: "default.svc.cluster.local" options: "ndots:5" }
  sysctls { key: "net.ipv4.ip_unprivileged_port_start" value: "0" }
  containers { name: "app" image: "app" ports { container_port: 53 protocol: PROTOCOL_SCTP } }
}
EOF

seed host <<EOF
pod { $(meta host) host_network: true host_pid: true host_ipc: true
  containers { name: "app" image: "app" security_context { privileged: true } } }
EOF

seed edge-uid-dotdot <<EOF
pod { metadata { name: "dots" namespace: "default" uid: ".." attempt: 4294967295 }
  containers { name: "app" image: "app" } }
EOF

seed edge-numbers <<EOF
pod { $(meta numbers) termination_grace_period_seconds: 9223372036854775807
  security_context { run_as_user: -1 supplemental_groups: -9223372036854775808 }
  containers { name: "app" image: "app"
    resources { cpu_request_millis: 9223372036854775807 cpu_limit_millis: 9223372036854775807
      memory_request_bytes: -1 memory_limit_bytes: 9223372036854775807 }
    startup_probe { handler { tcp_socket { port: "99999" } } period_seconds: 0 timeout_seconds: -1 }
    lifecycle { post_start { sleep { seconds: -9223372036854775808 } } } } }
EOF

seed edge-bytes <<EOF
pod { $(meta bytes) sysctls { key: "kernel/shm_rmid_forced" value: "1" }
  containers { name: "app" image: "UPPER/Case:tag@sha256:zz" image_pull_policy: 7
    env { name: "N\000UL" value: "v\000" } env { name: "" value: "\$()" }
    working_dir: "../.." termination_message_path: "../../etc/passwd"
    security_context { seccomp_profile { type: TYPE_LOCALHOST localhost_profile: "../../etc/passwd" } } } }
EOF
ls -l "$out"
