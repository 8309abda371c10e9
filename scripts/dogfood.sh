#!/usr/bin/env bash
# dogfood.sh — the Helm chart's pod, run by podstart itself, on the containerd
# lab (scripts/containerd-lab.sh; CONTAINER_RUNTIME_ENDPOINT and POD_SUBNET as
# it prints them, TEST_IMAGE for the small pod):
#   1. the image (scripts/image.sh, imported into the lab's k8s.io namespace
#      unless IMAGE_NAME is already there);
#   2. `helm template` of charts/podstart with lab values: the lab's socket
#      directory, a pod log root, state root and volume root of its own,
#      tmpfsVolumes (privileged, Bidirectional volume root), the image with
#      pull policy Never;
#   3. a host `podstart serve` on the lab (the "outer" podstart, an
#      authorization policy granting root the privileged level), and
#      `podstart run` of the DaemonSet's pod template as a Pod: podstart
#      starting podstart, its event stream printed;
#   4. the inner podstart reaches the lab containerd through the mounted
#      socket directory: /readyz answers 200 on the pod's IP, and a small pod
#      (a Memory emptyDir, a termination message) started through the inner
#      podstart's socket from the host runs;
#   5. stops the inner pod through the inner podstart, then the outer pod,
#      whatever happens.
# PODSTART_BIN=path/to/podstart uses that binary (default target/release/podstart,
# built if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$SECONDS
say() { echo "[dogfood $((SECONDS - t0))s] $*" >&2; }

: "${CONTAINER_RUNTIME_ENDPOINT:?the lab's runtime endpoint (scripts/containerd-lab.sh start)}"
: "${TEST_IMAGE:?the lab's busybox image (scripts/containerd-lab.sh start)}"
export IMAGE_NAME=${IMAGE_NAME:-localhost/podstart-lab/podstart:dev}
runtime_sock=${CONTAINER_RUNTIME_ENDPOINT#unix://}
command -v curl >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends curl >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends curl >/dev/null; }
}

if [[ -n ${PODSTART_BIN:-} ]]; then
  bin=$(realpath "$PODSTART_BIN")
else
  [[ -x target/release/podstart ]] || { scripts/build-deps.sh && cargo build --release --locked --bin podstart; }
  bin=$root/target/release/podstart
fi
helm=$(scripts/helm.sh)
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --root-user-action=ignore PyYAML >&2

# --- 1. the image ---------------------------------------------------------------
if ! ctr --address "$runtime_sock" -n k8s.io images ls -q "name==$IMAGE_NAME" | grep -qxF "$IMAGE_NAME"; then
  say "$IMAGE_NAME is not in the lab's containerd: scripts/image.sh"
  PODSTART_BIN=$bin CONTAINERD_ADDRESS=$runtime_sock scripts/image.sh
fi

# --- layout -------------------------------------------------------------------
w=$(mktemp -d /tmp/podstart-dogfood.XXXXXX)
outer=$w/outer # the host podstart's
node=$w/node   # the chart's host paths, as on a node
outer_ep=unix://$outer/podstart.sock
inner_ep=unix://$node/run/podstart.sock
serve_pid=
outer_started=
inner_started=

cleanup() {
  local rc=$?
  set +e
  if [[ -n $inner_started ]]; then
    say "stopping the small pod through the inner podstart"
    "$bin" --endpoint "$inner_ep" stop "$w/small.yaml" --grace-period 0 >&2 || rc=1
  fi
  if [[ -n $outer_started ]]; then
    [[ $rc == 0 ]] || { say "the inner podstart's log (last 40 lines):"; tail -n 40 "$outer"/logs/*/podstart/0.log >&2 2>/dev/null; }
    say "stopping the chart's pod through the outer podstart"
    "$bin" --endpoint "$outer_ep" stop "$w/pod.yaml" >&2 || rc=1
  fi
  if [[ -n $serve_pid ]]; then
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    [[ $rc == 0 ]] || { say "the outer podstart's log (last 20 lines):"; tail -n 20 "$w/outer.log" >&2; }
  fi
  # Deepest mounts first: the inner podstart's tmpfs volumes, then the bind.
  findmnt -rn -o TARGET | grep -F "$w/" | sort -r | while read -r m; do umount "$m"; done
  rm -rf "$w"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$outer" "$node/run" "$node/logs" "$node/state" "$node/volumes"
# The inner podstart's tmpfs mounts reach the host through a Bidirectional
# mount, which needs a shared mount at the source.
mount --bind "$node/volumes" "$node/volumes"
mount --make-shared "$node/volumes"

# --- 2. the chart, rendered with lab values ---------------------------------------
say "helm template charts/podstart with lab values"
"$helm" template podstart charts/podstart --namespace podstart \
  --set image.repository="${IMAGE_NAME%:*}" --set image.tag="${IMAGE_NAME##*:}" --set image.pullPolicy=Never \
  --set runtime.socketDir="$(dirname "$runtime_sock")" --set runtime.socketName="$(basename "$runtime_sock")" \
  --set podstart.socketDir="$node/run" --set podstart.podLogRoot="$node/logs" \
  --set podstart.stateRoot="$node/state" --set podstart.volumeRoot="$node/volumes" \
  --set podstart.tmpfsVolumes=true --set podstart.shutdownGraceSeconds=5 \
  --set 'podstart.extraArgs={--restrict-oom-score-adj}' \
  >"$w/chart.yaml"
# The DaemonSet's pod template as a Pod.
python3 - "$w/chart.yaml" "$w/pod.yaml" <<'PY'
import sys, yaml
ds = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet")
tpl = ds["spec"]["template"]
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "podstart-dogfood", "namespace": ds["metadata"]["namespace"],
                    "labels": tpl["metadata"].get("labels", {})},
       "spec": tpl["spec"]}
yaml.safe_dump(pod, open(sys.argv[2], "w"), sort_keys=False)
PY
cat >"$w/small.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: small
  namespace: default
spec:
  containers:
    - name: app
      image: $TEST_IMAGE
      imagePullPolicy: Never
      command: ["sh", "-c", "echo written > /scratch/file && echo started > /dev/termination-log && exec sleep 3600"]
      volumeMounts:
        - name: scratch
          mountPath: /scratch
  volumes:
    - name: scratch
      emptyDir:
        medium: Memory
        sizeLimit: 1Mi
EOF

# --- 3. podstart starting podstart ----------------------------------------------
cat >"$w/policy.yaml" <<'EOF'
rules:
  - identities: ["unix:uid=0"]
    namespaces: ["*"]
    verbs: [start, stop, read, watch]
    podSecurity: privileged
EOF
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "outer podstart serve on $outer_ep, runtime $CONTAINER_RUNTIME_ENDPOINT"
"$bin" serve --runtime-endpoint "$CONTAINER_RUNTIME_ENDPOINT" --listen "$outer_ep" \
  --pod-log-root "$outer/logs" --pod-state-root "$outer/state" --pod-volume-root "$outer/volumes" \
  --metrics-listen "127.0.0.1:$port" --restrict-oom-score-adj --authz-policy "$w/policy.yaml" \
  --shutdown-grace 5s 2>"$w/outer.log" &
serve_pid=$!
for _ in $(seq 100); do [[ -S $outer/podstart.sock ]] && break; kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
[[ -S $outer/podstart.sock ]] || { echo "dogfood: the outer podstart did not create its socket" >&2; exit 1; }

say "podstart run of the chart's pod (the DaemonSet's template) through the outer podstart:"
outer_started=1
"$bin" --endpoint "$outer_ep" run "$w/pod.yaml" 2>"$w/run.err" | sed 's/^/  outer | /' ||
  { grep -v '^warning:' "$w/run.err" >&2; echo "dogfood: the chart's pod did not start" >&2; exit 1; }
ip=$("$bin" --endpoint "$outer_ep" get --output json "$w/pod.yaml" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["ips"][0])')

# --- 4. the inner podstart ------------------------------------------------------
say "GET http://$ip:9464/readyz (the inner podstart reaches the lab containerd through $(dirname "$runtime_sock"))"
code=
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ip:9464/readyz" || true)
  [[ $code == 200 ]] && break
  sleep 0.2
done
[[ $code == 200 ]] || { echo "dogfood: /readyz of the inner podstart answered ${code:-nothing}, not 200" >&2; exit 1; }
for _ in $(seq 100); do [[ -S $node/run/podstart.sock ]] && break; sleep 0.1; done
say "podstart run of a small pod through the inner podstart's socket ($inner_ep):"
inner_started=1
"$bin" --endpoint "$inner_ep" run "$w/small.yaml" 2>/dev/null | sed 's/^/  inner | /' ||
  { echo "dogfood: the inner podstart did not start the small pod" >&2; exit 1; }
"$bin" --endpoint "$inner_ep" get --output json "$w/small.yaml" >"$w/small.json"
"$bin" --endpoint "$outer_ep" get --output json "$w/pod.yaml" >"$w/pod.json"
python3 - "$w/pod.json" "$w/small.json" "$node" <<'PY'
"""What the runtime sees of the small pod: the inner podstart's paths on the host."""
import json, os, subprocess, sys
outer, small, node = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
def check(ok, what):
    if not ok:
        sys.exit(f"dogfood: {what}: no")
    print(f"  verified: {what}")
c = outer["containers"][0]
check(outer["state"] == "ready" and c["state"] == "running" and c["restart_count"] == 0,
      f"the chart's pod {outer['namespace']}/{outer['name']} runs podstart ({c['image']}, ip {outer['ips'][0]})")
app = small["containers"][0]
check(small["state"] == "ready" and app["state"] == "running",
      f"the inner podstart started {small['namespace']}/{small['name']} (container {app['id'][:13]}, ip {small['ips'][0]})")
check(app["log_path"].startswith(node + "/logs/") and os.path.exists(app["log_path"]),
      f"its log is written where the inner podstart said, on the host: {app['log_path']}")
state = os.path.join(node, "state", small["uid"])
check(os.path.isdir(state), f"its state (termination-message files) is on the host: {state}")
mounts = subprocess.run(["findmnt", "-rn", "-t", "tmpfs", "-o", "TARGET"], capture_output=True, text=True).stdout.split()
tmpfs = [m for m in mounts if m.startswith(os.path.join(node, "volumes", small["uid"]) + "/")]
written = [m for m in tmpfs if os.path.exists(os.path.join(m, "file"))
           and open(os.path.join(m, "file")).read().strip() == "written"]
check(written, "its Memory emptyDir, a tmpfs the inner podstart mounted, reached the host and the runtime "
               f"(Bidirectional): {written[0] if written else tmpfs}")
PY
say "dogfood passed: podstart ran the chart's pod, which started a pod itself"
