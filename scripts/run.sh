#!/usr/bin/env bash
# run.sh — builds podstart and serves it.
#
#   scripts/run.sh                               # brings up the lab containerd, serves against it
#   scripts/run.sh --runtime-endpoint sim        # the built-in simulated runtime (no root needed)
#   scripts/run.sh --runtime-endpoint unix:///run/containerd/containerd.sock
#
# Any other flag goes to `podstart serve` (see `podstart serve --help`).
# The client is put on the PATH: a link /usr/local/bin/podstart (as root; else
# ~/.local/bin/podstart) to the release binary, so that in another shell
#   podstart run examples/pod.yaml
# works. PODSTART_BIN_DIR=DIR links it there instead; PODSTART_BIN_DIR= (empty)
# links nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-deps.sh
cargo build --release --locked --bin podstart >&2

default_bin_dir=/usr/local/bin
[[ -w $default_bin_dir ]] || default_bin_dir=$HOME/.local/bin
bin_dir=${PODSTART_BIN_DIR-$default_bin_dir}
if [[ -n $bin_dir ]]; then
  mkdir -p "$bin_dir"
  ln -sfn "$PWD/target/release/podstart" "$bin_dir/podstart"
  echo "[run] $bin_dir/podstart -> $PWD/target/release/podstart" >&2
  case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "[run] $bin_dir is not on your PATH: add it, or type $bin_dir/podstart" >&2 ;;
  esac
fi

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
