#!/usr/bin/env bash
# The soak of benches/soak.rs, release build: PODS StartPods (default
# 20000) against the simulated runtime with injected faults and one
# runtime restart, each pod stopped as its start ends; prints a table.
#
#   scripts/soak.sh [PODS]
set -euo pipefail
cd "$(dirname "$0")/.."
PODSTART_SOAK_PODS="${1:-20000}" exec cargo bench --bench soak
