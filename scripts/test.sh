#!/usr/bin/env bash
# test.sh — every test podstart has, on a fresh machine: formatting and lints,
# unit and integration tests (simulated runtime), non-Rust clients (Python
# grpcio, grpcurl) against podstart serve, then end-to-end tests
# against a real containerd + runc + CNI + loopback registry brought up by
# scripts/containerd-lab.sh, a smoke run of every benchmark on it
# (scripts/bench.sh --smoke), the image built into it (scripts/image.sh),
# the chart's pod run there by podstart (scripts/dogfood.sh), the chart's
# alerts and dashboard on a real Prometheus scraping podstart on that lab,
# and the lab torn down afterwards, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { echo "[test $((SECONDS - t0))s] $*" >&2; }

scripts/build-deps.sh
scripts/test-deps.sh
# promtool and grpcurl are installed above: their tests must not skip.
export PODSTART_REQUIRE_TOOLS=1

say "cargo fmt --check"
cargo fmt --all -- --check
say "no import cycles between modules"
scripts/module-cycles.py src
say "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

say "cargo deny (licenses, bans, sources; deny.toml says why not advisories)"
cargo deny --locked check licenses bans sources

say "unit and integration tests (simulated runtime)"
# The e2e tests are #[ignore]d: they run below, once the lab is up.
cargo test --locked

say "non-Rust clients: Python grpcio and grpcurl over the unix socket and mTLS TCP (simulated runtime)"
# cargo test built target/debug/podstart (the integration tests run it).
scripts/clients-test.sh target/debug/podstart

# PODSTART_FUZZ_SECONDS=0 leaves the fuzzing step out.
if [ "${PODSTART_FUZZ_SECONDS:-30}" != 0 ]; then
  say "fuzzing: each target for ${PODSTART_FUZZ_SECONDS:-30}s from the seed corpus"
  scripts/fuzz.sh "${PODSTART_FUZZ_SECONDS:-30}"
fi

say "image, Helm chart, alerts and dashboard"
scripts/chart-test.sh

say "starting the containerd lab"
# The lab must stop even when a test fails or the run is interrupted.
trap 'say "stopping the containerd lab"; scripts/containerd-lab.sh stop >&2 || true' EXIT
lab_env=$(scripts/containerd-lab.sh start)
eval "$lab_env"
export PODSTART_E2E_RUNTIME=$CONTAINER_RUNTIME_ENDPOINT
export PODSTART_E2E_TEST_IMAGE=$TEST_IMAGE
export PODSTART_E2E_POD_SUBNET=$POD_SUBNET
export PODSTART_E2E_REQUIRED=1

say "end-to-end tests against containerd at $PODSTART_E2E_RUNTIME"
cargo test --locked --test e2e -- --ignored --test-threads=1

say "benchmarks, smoke run: every scenario with tiny counts, debug build, no timing assertions"
scripts/bench.sh --smoke

# The release binary scripts/chart-test.sh built, into an image, into the lab.
export CONTAINER_RUNTIME_ENDPOINT TEST_IMAGE POD_SUBNET
say "the image: the Dockerfile built with buildah, imported into the lab"
CONTAINERD_ADDRESS=${CONTAINER_RUNTIME_ENDPOINT#unix://} scripts/image.sh
say "dogfood: the chart's pod run by podstart on the lab, starting a pod itself"
scripts/dogfood.sh

say "the chart's alerts and dashboard on a real Prometheus scraping podstart on the lab"
# cargo test built target/debug/podstart. The script kills the lab containerd
# and revives it (the alert on a stopped runtime): it runs before the lab stops.
PODSTART_BIN=target/debug/podstart scripts/prometheus-test.sh
say "all tests passed"
