#!/usr/bin/env bash
# containerd-lab.sh — podstart's private containerd (CRI) lab for e2e tests, CI and local runs.
#
# Usage:
#   scripts/containerd-lab.sh start [--export]   bring the lab up (or reuse a running one); KEY=value on stdout
#   scripts/containerd-lab.sh env [--export]     KEY=value lines of a running lab; starts nothing
#   scripts/containerd-lab.sh status             human summary; exit 0 iff the lab containerd is up
#   scripts/containerd-lab.sh stop [--purge]     tear everything down; --purge also deletes the lab dir
#   scripts/containerd-lab.sh crash              SIGKILL the lab containerd (by its PID); pods and shims stay
#   scripts/containerd-lab.sh revive             start the lab containerd again, same config and state,
#                                                 tearing nothing down (no-op when it is up)
#
#   eval "$(scripts/containerd-lab.sh start)"            # shell variables
#   eval "$(scripts/containerd-lab.sh start --export)"   # exported, visible to `cargo test`
#
# The lab: one containerd 1.6 (CRI plugin, runc, cgroupfs, CNI bridge + host-local) whose root,
# state, socket, runc root, netns mounts, IPAM and registry mirror config all live under $PODSTART_LAB.
# Images are built offline (a static C pause, busybox-static, and busybox plus layers of random
# data, all with umoci); pause and busybox are imported into the
# k8s.io namespace, and two loopback registries (anonymous and basic auth, one storage) serve
# busybox and the layered images podstart-lab/{layers-a,b,c,big-1..4}:1.
# Outside the lab dir the lab only touches: the bridge, net.ipv4.ip_forward, cgroups under the
# controllers (/k8s.io/<id> by default), shim sockets in /run/containerd/s and libcni's result cache
# in /var/lib/cni/results. `stop` puts all of those back.
#
# Environment (defaults chosen so they do not collide with another lab on the same machine):
#   PODSTART_LAB                     lab dir                      /tmp/podstart-lab
#   PODSTART_LAB_BRIDGE              CNI bridge name               pstlab0
#   PODSTART_LAB_SUBNET              pod subnet                    10.219.0.0/24
#   PODSTART_LAB_REGISTRY_PORT       anonymous registry port       5400  (127.0.0.1 only)
#   PODSTART_LAB_AUTH_REGISTRY_PORT  basic-auth registry port      5402  (127.0.0.1 only; labuser/labpass)
#
# Progress goes to stderr; only KEY=value lines go to stdout. Needs root.
set -euo pipefail

LAB=${PODSTART_LAB:-/tmp/podstart-lab}
LAB=${LAB%/}
BRIDGE=${PODSTART_LAB_BRIDGE:-pstlab0}
SUBNET=${PODSTART_LAB_SUBNET:-10.219.0.0/24}
REG_PORT=${PODSTART_LAB_REGISTRY_PORT:-5400}
AUTH_REG_PORT=${PODSTART_LAB_AUTH_REGISTRY_PORT:-5402}
REG_USER=labuser
REG_PASS=labpass

SANDBOX_IMAGE=localhost/podstart-lab/pause:3.9
TEST_IMAGE=localhost/podstart-lab/busybox:latest
REG_REPO=podstart-lab/busybox        # repository pushed to the registries (tag: latest)
CNI_NET=podstart-lab-$BRIDGE          # CNI network name; prefixes libcni's cache files
IMAGE_RECIPE=3                        # bump when the image recipes below change
# Layered test images (busybox + layers of random data), pushed to the registries as
# podstart-lab/<name>:1. "name:layers:MiB-per-layer". layers-*: a few MiB, for e2e pulls;
# big-*: ~20 MiB, for the pull benchmark.
LAYERED_IMAGES=(layers-a:3:1 layers-b:3:1 layers-c:3:1 big-1:4:5 big-2:4:5 big-3:4:5 big-4:4:5)

SOCK=$LAB/containerd.sock
CONFIG=$LAB/containerd.toml
PIDFILE=$LAB/containerd.pid
LOGS=$LAB/log
IMAGES=$LAB/images
REG_DIR=$LAB/registry
CNI_RESULTS=/var/lib/cni/results
PACKAGES=(containerd runc containernetworking-plugins busybox-static umoci gcc
          docker-registry skopeo apache2-utils protobuf-compiler
          curl iproute2) # the last two: tools this script itself uses (registry probes, ip, ss)

T0=$EPOCHREALTIME
say() {
  local now=$EPOCHREALTIME
  printf '[containerd-lab %5.2fs] %s\n' "$(awk -v a="$T0" -v b="$now" 'BEGIN{print b-a}')" "$*" >&2
}
die() { say "error: $*"; exit 1; }

check_settings() {
  [[ $LAB == /* && $LAB != / && $LAB != *[[:space:]]* ]] \
    || die "PODSTART_LAB must be an absolute path without whitespace (got '${PODSTART_LAB:-}')"
  [[ $BRIDGE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "bad bridge name '$BRIDGE'"
  [[ $REG_PORT =~ ^[0-9]+$ && $AUTH_REG_PORT =~ ^[0-9]+$ && $REG_PORT != "$AUTH_REG_PORT" ]] \
    || die "registry ports must be two different numbers"
  ((EUID == 0)) || die "the lab needs root"
}

# ------------------------------------------------------------------ process identity
# A PID belongs to the lab only if its argv says so (exact config / socket path), never by name.
argv_of() { # pid -> ARGV array; fails if the process is gone
  ARGV=()
  { mapfile -d '' -t ARGV <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  ((${#ARGV[@]} > 0))
}
argv_has_pair() { # flag value: ARGV contains "flag value" as two consecutive words
  local i
  for ((i = 1; i + 1 < ${#ARGV[@]}; i++)); do
    [[ ${ARGV[i]} == "$1" && ${ARGV[i + 1]} == "$2" ]] && return 0
  done
  return 1
}
is_lab_containerd() { argv_of "$1" && [[ ${ARGV[0]##*/} == containerd ]] && argv_has_pair --config "$CONFIG"; }
is_lab_registry() { # pid config
  argv_of "$1" && [[ ${ARGV[0]##*/} == docker-registry && ${ARGV[*]: -1} == "$2" ]]
}
containerd_pid() { # prints the PID of the lab containerd (pidfile first, argv scan as a fallback)
  local p d
  p=$(cat "$PIDFILE" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && is_lab_containerd "$p"; then echo "$p"; return 0; fi
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    if is_lab_containerd "$p"; then echo "$p" >"$PIDFILE"; echo "$p"; return 0; fi
  done
  return 1
}
lab_shim_pids() { # shims whose argv names OUR socket (-address $SOCK)
  local d p
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    if argv_of "$p" && [[ ${ARGV[0]##*/} == containerd-shim* ]] && argv_has_pair -address "$SOCK"; then
      echo "$p"
    fi
  done
  return 0
}
alive() { # pid: exists and is not a zombie (our daemons are reparented; their reaper may be slow)
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}
wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do alive "$1" || return 0; sleep 0.1; done
  return 1
}
ctr_lab() { timeout 30 ctr --address "$SOCK" "$@"; }

# ------------------------------------------------------------------ teardown pieces
lab_mounts() { # mount points under $LAB, deepest first
  findmnt -rn -o TARGET | awk -v p="$LAB/" 'index($0, p) == 1 { print gsub("/", "/"), $0 }' \
    | sort -rn | cut -d' ' -f2- | uniq
}
lab_cgroup_paths() { # cgroupsPath of every container the lab knows: specs from containerd, else bundles
  local ns id f
  {
    if containerd_pid >/dev/null; then
      for ns in $(ctr_lab namespaces ls -q 2>/dev/null || true); do
        for id in $(ctr_lab -n "$ns" containers ls -q 2>/dev/null || true); do
          ctr_lab -n "$ns" containers info "$id" 2>/dev/null || true
        done
      done
    fi
    for f in "$LAB"/state/io.containerd.runtime.v2.task/*/*/config.json; do
      if [[ -f $f ]]; then cat "$f"; fi
    done
  } | grep -o '"cgroupsPath": *"/[^"]*"' | cut -d'"' -f4 | sort -u || true
}
lab_sandbox_ids() {
  local d
  for d in "$LAB"/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    if [[ -e $d ]]; then basename "$d"; fi
  done
}

stop_pods_and_containerd() {
  local pid ns id n=0
  if pid=$(containerd_pid); then
    # While containerd is up, let it kill and delete every task: the shims unmount the rootfs and exit.
    for ns in $(ctr_lab namespaces ls -q 2>/dev/null || true); do
      for id in $(ctr_lab -n "$ns" tasks ls -q 2>/dev/null || true); do
        ctr_lab -n "$ns" tasks delete --force "$id" >/dev/null 2>&1 || true
        n=$((n + 1))
      done
    done
    ((n == 0)) || say "killed and deleted $n task(s) through containerd"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
      say "containerd pid $pid ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || say "warning: containerd pid $pid still exists"
    fi
    say "containerd pid $pid stopped"
  fi
  rm -f "$PIDFILE"

  # Anything still running under our runc root (containerd died or was killed): kill and delete it.
  local root
  for root in "$LAB"/state/runc/*/; do
    [[ -d $root ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null || true); do
      runc --root "$root" kill "$id" KILL >/dev/null 2>&1 || true
      runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
      say "runc: removed leftover container ${id:0:12}"
    done
  done
  for pid in $(lab_shim_pids); do
    if kill -KILL "$pid" 2>/dev/null; then say "killed shim pid $pid"; fi
    wait_gone "$pid" 5 || true
  done
  # Shim sockets are hard-wired to /run/containerd/s/<hash> in 1.6; each bundle records its own.
  local a s
  for a in "$LAB"/state/io.containerd.runtime.v2.task/*/*/address; do
    [[ -f $a ]] || continue
    s=$(<"$a"); s=${s#unix://}
    if [[ $s == /run/containerd/s/* ]]; then rm -f "$s"; fi
  done
}

unmount_lab() {
  local m pass left
  for pass in 1 2 3; do
    left=$(lab_mounts)
    [[ -n $left ]] || return 0
    for m in $left; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    say "unmounted $(wc -w <<<"$left") mount(s) under $LAB (pass $pass)"
  done
  [[ -z $(lab_mounts) ]]
}

clean_network() {
  local id f n=0 veth
  # libcni result cache: one file per <network>-<sandbox id>-<ifname>
  for id in $(lab_sandbox_ids); do
    for f in "$CNI_RESULTS"/*-"$id"-*; do
      if [[ -e $f ]]; then rm -f "$f"; n=$((n + 1)); fi
    done
  done
  for f in "$CNI_RESULTS/$CNI_NET"-*; do
    if [[ -e $f ]]; then rm -f "$f"; n=$((n + 1)); fi
  done
  ((n == 0)) || say "removed $n CNI result cache file(s)"
  # host-local reservations live in the lab dir: nothing of ours is running, so drop them all
  rm -rf "$LAB/cni/ipam"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$veth" 2>/dev/null || true
    done
    if ip link del "$BRIDGE"; then say "deleted bridge $BRIDGE"; fi
  fi
  if [[ -f $LAB/ip_forward.saved ]]; then
    local v; v=$(<"$LAB/ip_forward.saved")
    if [[ $v =~ ^[01]$ ]] && [[ $(</proc/sys/net/ipv4/ip_forward) != "$v" ]]; then
      echo "$v" >/proc/sys/net/ipv4/ip_forward
      say "restored net.ipv4.ip_forward=$v"
    fi
    rm -f "$LAB/ip_forward.saved"
  fi
}

clean_cgroups() { # cgroup paths... : in every hierarchy rmdir each path, then its parents, while empty
  local root path d n=0
  for root in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do
    for path in "$@"; do
      [[ $path == /?* && $path != *..* ]] || continue
      d=$root$path
      while [[ $d != "$root" ]]; do # missing dirs are skipped; stop at the first one in use
        if [[ -d $d ]]; then rmdir "$d" 2>/dev/null || break; n=$((n + 1)); fi
        d=${d%/*}
      done
    done
  done
  ((n == 0)) || say "removed $n empty cgroup dir(s)"
}

teardown_runtime() { # everything but the registries; leaves caches (images, registry data, logs)
  local cgroups
  cgroups=$(lab_cgroup_paths)
  stop_pods_and_containerd
  unmount_lab || say "warning: mounts left under $LAB: $(lab_mounts | tr '\n' ' ')"
  clean_network
  # shellcheck disable=SC2086 # cgroup paths are words; /k8s.io is containerd's default parent
  clean_cgroups $cgroups /k8s.io
  if [[ -z $(lab_mounts) ]]; then
    # containerd's own data goes too: a restarted lab must not resurrect old sandboxes or names
    rm -rf "$LAB/root" "$LAB/state" "$LAB/opt"
  fi
  rm -f "$SOCK" "$SOCK.ttrpc"
}

stop_registry() { # name
  local pf=$REG_DIR/$1.pid p
  [[ -f $pf ]] || return 0
  p=$(cat "$pf" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && is_lab_registry "$p" "$REG_DIR/$1.yml"; then
    kill -TERM "$p" 2>/dev/null || true
    wait_gone "$p" 5 || { kill -KILL "$p" 2>/dev/null || true; wait_gone "$p" 2 || true; }
    say "registry $1 pid $p stopped"
  fi
  rm -f "$pf"
}

# ------------------------------------------------------------------ start pieces
ensure_packages() {
  local p installed missing=()
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
  for p in "${PACKAGES[@]}"; do
    grep -qxF "$p install ok installed" <<<"$installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} (log: $LOGS/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1; then
    say "apt-get install failed; running apt-get update and retrying"
    apt-get update >>"$LOGS/apt.log" 2>&1 || true
    apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 \
      || die "package install failed; see $LOGS/apt.log"
  fi
}

layout_digest() { # OCI layout dir -> digest of its (single) manifest
  grep -o '"digest":"sha256:[0-9a-f]\{64\}"' "$1/index.json" | head -1 | cut -d'"' -f4
}

build_pause() { # static C pause -> $IMAGES/pause (OCI layout) + pause.oci.tar
  local w=$IMAGES/work-pause
  rm -rf "$w" "$IMAGES/pause"; mkdir -p "$w"
  cat >"$w/pause.c" <<'C'
/* podstart lab pause: sleeps forever, reaps zombies, exits 0 on SIGINT/SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = quit;
  sigaction(SIGINT, &sa, 0);
  sigaction(SIGTERM, &sa, 0);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, 0);
  for (;;) pause();
}
C
  gcc -Os -static -s -o "$w/pause" "$w/pause.c"
  umoci init --layout "$IMAGES/pause"
  umoci new --image "$IMAGES/pause:3.9"
  umoci unpack --image "$IMAGES/pause:3.9" "$w/bundle" >/dev/null
  install -m 0755 "$w/pause" "$w/bundle/rootfs/pause"
  umoci repack --image "$IMAGES/pause:3.9" "$w/bundle"
  umoci config --image "$IMAGES/pause:3.9" --clear=config.cmd --config.entrypoint /pause
  umoci gc --layout "$IMAGES/pause"
  tar -C "$IMAGES/pause" -cf "$IMAGES/pause.oci.tar" .
  rm -rf "$w"
}

build_busybox() { # busybox-static rootfs -> $IMAGES/busybox (OCI layout, pushed by skopeo) + busybox.oci.tar
  local w=$IMAGES/work-busybox r a
  rm -rf "$w" "$IMAGES/busybox"; mkdir -p "$w"
  umoci init --layout "$IMAGES/busybox"
  umoci new --image "$IMAGES/busybox:latest"
  umoci unpack --image "$IMAGES/busybox:latest" "$w/bundle" >/dev/null
  r=$w/bundle/rootfs
  mkdir -p "$r"/{bin,dev,etc,proc,root,sys,tmp,var/log}
  chmod 1777 "$r/tmp"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
  umoci repack --image "$IMAGES/busybox:latest" "$w/bundle"
  umoci config --image "$IMAGES/busybox:latest" --clear=config.entrypoint \
    --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd sh
  umoci gc --layout "$IMAGES/busybox"
  tar -C "$IMAGES/busybox" -cf "$IMAGES/busybox.oci.tar" .
  rm -rf "$w"
}

build_layered() { # name layers mib -> $IMAGES/<name> (OCI layout, tag 1): busybox + random layers
  local name=$1 layers=$2 mib=$3 w=$IMAGES/work-$1 i
  rm -rf "$w" "$IMAGES/$name"; mkdir -p "$w"
  cp -a "$IMAGES/busybox" "$IMAGES/$name"
  umoci tag --image "$IMAGES/$name:latest" 1
  umoci rm --image "$IMAGES/$name:latest"
  for ((i = 1; i <= layers; i++)); do # unpack, add one file, repack: one new layer each time
    umoci unpack --image "$IMAGES/$name:1" "$w/bundle" >/dev/null
    head -c "$((mib * 1024 * 1024))" /dev/urandom >"$w/bundle/rootfs/random-$i"
    umoci repack --image "$IMAGES/$name:1" "$w/bundle"
    rm -rf "$w/bundle"
  done
  umoci gc --layout "$IMAGES/$name"
  rm -rf "$w"
}

layered_built() {
  local spec
  for spec in "${LAYERED_IMAGES[@]}"; do [[ -f $IMAGES/${spec%%:*}/index.json ]] || return 1; done
}

ensure_images_built() {
  local stamp spec name rest
  stamp="recipe=$IMAGE_RECIPE busybox=$(dpkg-query -W -f='${Version}' busybox-static) gcc=$(gcc -dumpversion)"
  if [[ $(cat "$IMAGES/stamp" 2>/dev/null || true) == "$stamp" && -s $IMAGES/pause.oci.tar &&
        -s $IMAGES/busybox.oci.tar && -f $IMAGES/busybox/index.json ]] && layered_built; then
    return 0
  fi
  mkdir -p "$IMAGES"
  say "building images offline (pause, busybox, ${#LAYERED_IMAGES[@]} layered images)"
  build_pause
  build_busybox
  for spec in "${LAYERED_IMAGES[@]}"; do
    name=${spec%%:*} rest=${spec#*:}
    build_layered "$name" "${rest%%:*}" "${rest#*:}"
  done
  echo "$stamp" >"$IMAGES/stamp"
}

write_config() { # -> returns 0 if config.toml changed
  cat >"$CONFIG.new" <<EOF
# podstart lab containerd — generated by scripts/containerd-lab.sh; edits are overwritten.
version = 2
root = "$LAB/root"
state = "$LAB/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  # these VMs lack CAP_SYS_RESOURCE: a negative oom_score_adj (pause asks for -998) makes runc fail
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  # streaming (exec/attach) on loopback, ephemeral port: never collides with another lab
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$LAB/state/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$LAB/certs.d"
EOF
  if [[ -f $CONFIG ]] && cmp -s "$CONFIG" "$CONFIG.new"; then rm -f "$CONFIG.new"; return 1; fi
  mv "$CONFIG.new" "$CONFIG"
}

write_cni_and_mirrors() {
  mkdir -p "$LAB/cni/net.d" "$LAB/cni/ipam" "$LAB/certs.d/localhost"
  cat >"$LAB/cni/net.d/10-podstart-lab.conflist.tmp" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$LAB/cni/ipam",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
  mv "$LAB/cni/net.d/10-podstart-lab.conflist.tmp" "$LAB/cni/net.d/10-podstart-lab.conflist"
  # "localhost/..." image refs resolve against the anonymous loopback registry, so CRI PullImage of
  # $TEST_IMAGE works offline (pull policy Always). 127.0.0.1:<port> refs need no hosts.toml:
  # containerd 1.6 speaks plain HTTP to loopback registries.
  cat >"$LAB/certs.d/localhost/hosts.toml" <<EOF
server = "http://127.0.0.1:$REG_PORT"

[host."http://127.0.0.1:$REG_PORT"]
  capabilities = ["pull", "resolve"]
EOF
}

start_containerd() {
  [[ -f $LAB/ip_forward.saved ]] || cat /proc/sys/net/ipv4/ip_forward >"$LAB/ip_forward.saved"
  mkdir -p "$LAB/root" "$LAB/state" "$LAB/opt"
  say "starting containerd (log: $LOGS/containerd.log)"
  # own session; no inherited stdout (the caller's $(...) would wait for it) and no lock fd
  setsid containerd --config "$CONFIG" </dev/null >>"$LOGS/containerd.log" 2>&1 3>&- 9>&- &
  local i pid=""
  for ((i = 0; i < 300; i++)); do
    if [[ -z $pid ]]; then pid=$(containerd_pid || true); fi
    if [[ -n $pid ]] && [[ -S $SOCK ]] && ctr_lab version >/dev/null 2>&1; then
      echo "$pid" >"$PIDFILE"
      say "containerd up: pid $pid, socket $SOCK"
      return 0
    fi
    if ((i > 20)) && [[ -z $pid ]]; then break; fi
    if [[ -n $pid ]] && ! alive "$pid"; then break; fi
    sleep 0.1
  done
  tail -n 20 "$LOGS/containerd.log" >&2 || true
  die "containerd did not come up"
}

image_digest() { # ref -> digest in the lab's k8s.io namespace (empty if absent)
  ctr_lab -n k8s.io images ls 2>/dev/null | awk -v r="$1" '$1 == r { print $3 }'
}
ensure_image_imported() { # ref layout-dir tar
  local want; want=$(layout_digest "$2")
  [[ $(image_digest "$1") == "$want" ]] && return 0
  ctr_lab -n k8s.io images import --base-name "${1%:*}" "$3" >/dev/null
  [[ $(image_digest "$1") == "$want" ]] || die "import of $1 did not produce $want"
  say "imported $1 (${want:0:19})"
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

start_registry() { # name port [auth]
  local name=$1 port=$2 cfg=$REG_DIR/$1.yml pf=$REG_DIR/$1.pid p code i
  p=$(cat "$pf" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && is_lab_registry "$p" "$cfg"; then return 0; fi
  rm -f "$pf"
  port_busy "$port" && die "127.0.0.1:$port is taken by a process that is not this lab's registry"
  {
    printf 'version: 0.1\nlog:\n  level: warn\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n' "$REG_DIR/data"
    printf 'http:\n  addr: 127.0.0.1:%s\n  secret: podstart-lab-not-a-secret\n' "$port"
    if [[ ${3:-} == auth ]]; then
      printf 'auth:\n  htpasswd:\n    realm: podstart-lab\n    path: %s\n' "$REG_DIR/htpasswd"
    fi
  } >"$cfg"
  setsid docker-registry serve "$cfg" </dev/null >>"$LOGS/$name.log" 2>&1 3>&- 9>&- &
  echo $! >"$pf"
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    if [[ $code == 200 || $code == 401 ]]; then
      p=$(cat "$pf")
      is_lab_registry "$p" "$cfg" || die "registry $name: pid $p is not the registry (setsid forked?)"
      say "registry $name up: 127.0.0.1:$port pid $p"
      return 0
    fi
    sleep 0.05
  done
  tail -n 20 "$LOGS/$name.log" >&2 || true
  die "registry $name did not come up on 127.0.0.1:$port"
}

push_layout() { # layout-dir tag repo: pushes unless the registry already serves that digest
  local want have
  want=$(layout_digest "$1")
  have=$(curl -s -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
           "http://127.0.0.1:$REG_PORT/v2/$3/manifests/$2" \
         | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
  [[ $have == "$want" ]] && return 0
  skopeo copy -q --insecure-policy --dest-tls-verify=false \
    "oci:$1:$2" "docker://127.0.0.1:$REG_PORT/$3:$2"
  say "pushed 127.0.0.1:$REG_PORT/$3:$2 (${want:0:19})"
}

ensure_pushed() {
  local spec name
  push_layout "$IMAGES/busybox" latest "$REG_REPO"
  for spec in "${LAYERED_IMAGES[@]}"; do
    name=${spec%%:*}
    push_layout "$IMAGES/$name" 1 "podstart-lab/$name"
  done
}

print_env() { # [--export]
  local prefix=""
  if [[ ${1:-} == --export ]]; then prefix="export "; fi
  printf '%s%s=%q\n' \
    "$prefix" CONTAINER_RUNTIME_ENDPOINT "unix://$SOCK" \
    "$prefix" LAB "$LAB" \
    "$prefix" POD_SUBNET "$SUBNET" \
    "$prefix" SANDBOX_IMAGE "$SANDBOX_IMAGE" \
    "$prefix" TEST_IMAGE "$TEST_IMAGE" \
    "$prefix" REGISTRY "127.0.0.1:$REG_PORT" \
    "$prefix" AUTH_REGISTRY "127.0.0.1:$AUTH_REG_PORT" \
    "$prefix" AUTH_REGISTRY_USER "$REG_USER" \
    "$prefix" AUTH_REGISTRY_PASSWORD "$REG_PASS" \
    "$prefix" LAYERED_IMAGES "$(printf '%s ' "${LAYERED_IMAGES[@]%%:*}")" \
    "$prefix" PODSTART_RESTRICT_OOM_SCORE_ADJ true
}

lock_lab() { # serialise start/stop of one lab; fd 9 must not leak into daemons
  exec 9<"$LAB"
  flock -w 300 9 || die "another containerd-lab.sh holds $LAB"
}

# ------------------------------------------------------------------ subcommands
cmd_start() {
  local export_flag=${1:-}
  exec 3>&1 1>&2 # stdout is for KEY=value only; everything else goes to stderr
  mkdir -p "$LAB" "$LOGS" "$IMAGES" "$REG_DIR/data"
  lock_lab
  ensure_packages
  ensure_images_built

  local pid="" changed=0
  write_config && changed=1
  if pid=$(containerd_pid) && ((changed)); then
    say "containerd config changed: restarting the lab containerd"
    pid=""
  fi
  if [[ -n $pid ]]; then
    say "reusing running containerd pid $pid"
  else
    if [[ -S $SOCK ]] && ! containerd_pid >/dev/null && ctr_lab version >/dev/null 2>&1; then
      die "$SOCK is served by a containerd this script does not recognise; stop it first"
    fi
    # cold start: clear whatever a killed lab left behind (processes, mounts, bridge, CNI state)
    teardown_runtime
  fi
  write_cni_and_mirrors
  [[ -n $pid ]] || start_containerd
  ensure_image_imported "$SANDBOX_IMAGE" "$IMAGES/pause" "$IMAGES/pause.oci.tar"
  ensure_image_imported "$TEST_IMAGE" "$IMAGES/busybox" "$IMAGES/busybox.oci.tar"

  [[ -s $REG_DIR/htpasswd ]] || htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$REG_DIR/htpasswd"
  start_registry registry "$REG_PORT"
  start_registry registry-auth "$AUTH_REG_PORT" auth # same storage: serves the same repositories
  ensure_pushed
  say "lab ready"
  print_env "$export_flag" >&3
}

cmd_stop() {
  local purge=${1:-}
  if [[ -d $LAB ]]; then lock_lab; fi
  teardown_runtime
  stop_registry registry
  stop_registry registry-auth
  local left=0 p
  for p in $(lab_shim_pids); do say "leftover: shim pid $p"; left=1; done
  if pid=$(containerd_pid 2>/dev/null); then say "leftover: containerd pid $pid"; left=1; fi
  if [[ -n $(lab_mounts) ]]; then say "leftover mounts: $(lab_mounts | tr '\n' ' ')"; left=1; fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then say "leftover: bridge $BRIDGE"; left=1; fi
  if [[ $purge == --purge ]]; then
    if ((left)); then say "not removing $LAB: leftovers above"; else rm -rf "$LAB"; say "removed $LAB"; fi
  fi
  ((left == 0)) || die "teardown incomplete"
  say "lab stopped"
}

# A crashed containerd, for runtime-fault tests: only the daemon dies (kill -9 by its PID), as a
# crash would; its shims, containers and state stay, for `revive` to pick up again.
cmd_crash() {
  lock_lab
  local pid
  pid=$(containerd_pid) || die "no lab containerd running in $LAB"
  kill -KILL "$pid"
  wait_gone "$pid" 5 || die "containerd pid $pid survived SIGKILL"
  say "containerd pid $pid killed"
  echo "$pid"
}

# Brings the lab containerd back after a crash with the same config, root and state, so it
# reconnects to the running shims. Unlike `start`, it never tears anything down.
cmd_revive() {
  exec 3>&1 1>&2
  lock_lab
  local pid
  if pid=$(containerd_pid); then
    ctr_lab version >/dev/null 2>&1 || die "containerd pid $pid is running but does not answer"
    say "containerd already up: pid $pid"
  else
    [[ -f $CONFIG ]] || die "no lab config at $CONFIG (run: $0 start)"
    rm -f "$SOCK"
    start_containerd
    pid=$(containerd_pid)
  fi
  echo "$pid" >&3
}

registry_line() { # name port
  local p cfg=$REG_DIR/$1.yml
  p=$(cat "$REG_DIR/$1.pid" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]] && is_lab_registry "$p" "$cfg"; then
    echo "$1: up, 127.0.0.1:$2, pid $p"
  else
    echo "$1: down (127.0.0.1:$2)"
  fi
}

cmd_status() {
  local pid rc=1
  if pid=$(containerd_pid) && ctr_lab version >/dev/null 2>&1; then
    echo "containerd: up, pid $pid, unix://$SOCK"
    rc=0
  else
    echo "containerd: down ($LAB)"
  fi
  registry_line registry "$REG_PORT"
  registry_line registry-auth "$AUTH_REG_PORT"
  return "$rc"
}

cmd_env() {
  if containerd_pid >/dev/null && ctr_lab version >/dev/null 2>&1; then
    print_env "${1:-}"
  else
    die "no running lab in $LAB (run: $0 start)"
  fi
}

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    start | env) [[ $# -eq 0 || ($# -eq 1 && $1 == --export) ]] || usage ;;
    stop) [[ $# -eq 0 || ($# -eq 1 && $1 == --purge) ]] || usage ;;
    status | crash | revive) (($# == 0)) || usage ;;
    *) usage ;;
  esac
  check_settings
  case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env "$@" ;;
    crash) cmd_crash ;;
    revive) cmd_revive ;;
  esac
}

main "$@"
