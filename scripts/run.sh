#!/usr/bin/env bash
# run.sh — builds podstart and serves it.
#
#   scripts/run.sh                               # brings up the lab containerd, serves against it
#   scripts/run.sh --runtime-endpoint sim        # the built-in simulated runtime (no root needed)
#   scripts/run.sh --runtime-endpoint unix:///run/containerd/containerd.sock
#
# Any other flag goes to `podstart serve` (see `podstart serve --help`).
# Then, in another shell:  target/release/podstart run examples/pod.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-deps.sh
cargo build --release --locked --bin podstart >&2

args=("$@")
have_endpoint=0
for a in "${args[@]}"; do
  [[ $a == --runtime-endpoint || $a == --runtime-endpoint=* ]] && have_endpoint=1
done
if ((!have_endpoint)) && [[ -z ${PODSTART_RUNTIME_ENDPOINT:-} ]]; then
  echo "[run] no runtime endpoint given: starting the lab containerd (scripts/containerd-lab.sh)" >&2
  lab_env=$(scripts/containerd-lab.sh start)
  eval "$lab_env"
  args+=(--runtime-endpoint "$CONTAINER_RUNTIME_ENDPOINT")
  echo "[run] lab up; stop it with: scripts/containerd-lab.sh stop" >&2
fi
exec target/release/podstart serve "${args[@]}"
