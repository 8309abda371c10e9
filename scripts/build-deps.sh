#!/usr/bin/env bash
# build-deps.sh — installs what building podstart needs on a fresh Debian
# machine: protoc (our proto and the CRI crate's build scripts need it).
set -euo pipefail
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
if ((${#need[@]})); then
  echo "[build-deps] installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
