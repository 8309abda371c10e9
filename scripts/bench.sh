#!/usr/bin/env bash
# bench.sh — every benchmark scenario in one command, each table with its
# baseline from the same run, and a combined Markdown report.
#
#   scripts/bench.sh            release build, full counts; prints every table and writes
#                               target/bench/report.md (raw samples: target/bench/*.csv,
#                               plots: target/bench/*.png, each bench's output: target/bench/<bench>.out)
#   scripts/bench.sh --smoke    every scenario with tiny counts in the debug build
#                               (PODSTART_BENCH_SMOKE=1 cargo test --bench NAME), for CI:
#                               exercises every code path, asserts no timing
#
# Scenarios, one bench binary each (benches/NAME.rs):
#   (a) lab_overhead   podstart against a minimal direct CRI client on the containerd lab
#   (b) podman_play    podstart against `podman kube play` of the same pods
#   (c) sim_cost       podstart's own cost per StartPod on the simulated runtime
#   (d) throughput     StartPod/s on the simulated runtime, Rust load generator
#   (e) memory         RSS idle, with open streams, with live pods; cold start
#   (f) pull_latency   kubelet-like serial pulls against pre-pull + parallel, through a
#                      loopback proxy that makes the network the limit
#   then plots         a PNG per CSV under target/bench/
# A bench that does not exist on this checkout is skipped with a line saying so.
#
# Sets up what it needs: the lab (scripts/containerd-lab.sh start; it is left running),
# podman and catatonit (its pause image) with apt when missing. PODSTART_BENCH_* variables
# pass through to the benches (each bench's header lists its own).
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

smoke=0
case "${1:-}" in
  --smoke) smoke=1 ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--smoke]" >&2; exit 2 ;;
esac

t0=$SECONDS
say() { echo "[bench $((SECONDS - t0))s] $*" >&2; }
out_dir=${CARGO_TARGET_DIR:-target}/bench
mkdir -p "$out_dir"

say "the containerd lab"
if ! lab_env=$(scripts/containerd-lab.sh start); then
  echo "bench.sh: the containerd lab did not start" >&2
  exit 1
fi
set -a
eval "$lab_env"
set +a

if ! command -v podman >/dev/null || ! command -v catatonit >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing podman and catatonit with apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman catatonit >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman catatonit >&2; } \
      || say "podman could not be installed: the podman_play bench will say so and skip"
  else
    say "podman is missing and cannot be installed here (needs root and apt): podman_play will skip"
  fi
fi

benches=(lab_overhead podman_play sim_cost throughput memory pull_latency plots)
declare -A title=(
  [lab_overhead]="(a) overhead on the lab against a minimal direct CRI client"
  [podman_play]="(b) against podman kube play"
  [sim_cost]="(c) podstart's own cost on the sim"
  [throughput]="(d) throughput on the sim"
  [memory]="(e) memory"
  [pull_latency]="(f) pulls where the network is the limit"
  [plots]="plots of the latency distributions"
)
present=()
for b in "${benches[@]}"; do
  if [ -f "benches/$b.rs" ] || [ -f "benches/$b/main.rs" ]; then present+=("$b"); fi
done

bench_args=()
for b in "${present[@]}"; do bench_args+=(--bench "$b"); done
if [ "$smoke" = 1 ]; then
  export PODSTART_BENCH_SMOKE=1
  say "building the benches (debug): ${present[*]}"
  cargo test --locked --no-run "${bench_args[@]}" >&2 || exit 1
else
  say "building the benches (release): ${present[*]}"
  cargo bench --locked --no-run "${bench_args[@]}" >&2 || exit 1
fi

report=$out_dir/report.md
{
  echo "# podstart benchmarks"
  echo
  echo "machine: nproc $(nproc), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ), build profile $([ "$smoke" = 1 ] && echo "debug (smoke)" || echo release)"
  echo
  echo "command: \`scripts/bench.sh${1:+ $1}\`; lab: $CONTAINER_RUNTIME_ENDPOINT, image $TEST_IMAGE, registry $REGISTRY"
} >"$report"

failed=()
for b in "${benches[@]}"; do
  {
    echo
    echo "## ${title[$b]} — \`$b\`"
    echo
  } >>"$report"
  if [[ ! " ${present[*]} " == *" $b "* ]]; then
    line="skipped: benches/$b.rs does not exist on this checkout"
    say "$b: $line"
    echo "$line" >>"$report"
    continue
  fi
  say "$b"
  if [ "$smoke" = 1 ]; then
    cmd=(cargo test --locked --bench "$b")
  else
    cmd=(cargo bench --locked --bench "$b")
  fi
  echo "\`${cmd[*]}\`$([ "$smoke" = 1 ] && echo " with PODSTART_BENCH_SMOKE=1")" >>"$report"
  echo >>"$report"
  # The bench's stdout (its tables) goes to the terminal, the report and
  # target/bench/<bench>.out; cargo's own lines and progress to stderr.
  "${cmd[@]}" 2> >(tee "$out_dir/$b.log" >&2) | tee "$out_dir/$b.out" >>"$report"
  rc=${PIPESTATUS[0]}
  cat "$out_dir/$b.out"
  if [ "$rc" != 0 ]; then
    failed+=("$b")
    echo "**$b failed (exit $rc)**: see $out_dir/$b.log" >>"$report"
    say "$b FAILED (exit $rc)"
  fi
done

pngs=("$out_dir"/*.png)
if [ -e "${pngs[0]}" ]; then
  {
    echo
    echo "## plots"
    echo
    for p in "${pngs[@]}"; do
      n=$(basename "$p")
      echo "![${n%.png}]($n)"
    done
  } >>"$report"
fi

say "report: $report"
if [ "${#failed[@]}" != 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "done in $((SECONDS - t0))s"
