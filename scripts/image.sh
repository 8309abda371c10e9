#!/usr/bin/env bash
# image.sh — builds the podstart image from the repository's Dockerfile
# without a Docker engine, on a fresh Debian machine:
#   1. the runtime base: a Debian bookworm root filesystem made with
#      mmdebstrap (variant minbase + ca-certificates, SOURCE_DATE_EPOCH),
#      cached under target/image/, stored in buildah's storage (vfs, under
#      target/image/storage) under the exact name of the Dockerfile's runtime
#      FROM, so the build never contacts a registry;
#   2. buildah bud --build-arg BINARY=prebuilt: the Dockerfile's `prebuilt`
#      stage copies the binary cargo built (PODSTART_BIN, default
#      target/release/podstart, built if absent) from a context assembled
#      under target/image/context;
#   3. the image as an OCI archive, target/podstart-image.oci.tar, imported
#      into containerd's k8s.io namespace when CONTAINERD_ADDRESS (a socket
#      path) is set, as $IMAGE_NAME (default localhost/podstart-lab/podstart:dev);
#   4. prints the image's size and its layers.
# Run as root (buildah's vfs storage). Two builds of one commit give the same
# image digest: file times and the creation time are the commit's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$SECONDS
say() { echo "[image $((SECONDS - t0))s] $*" >&2; }

IMAGE_NAME=${IMAGE_NAME:-localhost/podstart-lab/podstart:dev}
out=$root/target/podstart-image.oci.tar
dir=$root/target/image
storage=(--root "$dir/storage" --runroot "$dir/run" --storage-driver vfs)

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { say "installing $tool"; apt_install "$tool"; }
done

# --- the binary -------------------------------------------------------------
if [[ -n ${PODSTART_BIN:-} ]]; then
  bin=$(realpath "$PODSTART_BIN")
elif [[ -x target/release/podstart ]]; then
  bin=$root/target/release/podstart
else
  say "cargo build --release (the binary the image copies)"
  scripts/build-deps.sh
  cargo build --release --locked --bin podstart 2>&1 | tail -n 2 >&2
  bin=$root/target/release/podstart
fi
version=$("$bin" --version | awk '{print $NF}')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time: the same commit gives the same image.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# --- 1. the runtime base ------------------------------------------------------
# The Dockerfile's last FROM is the runtime stage.
base=$(awk 'toupper($1) == "FROM" { ref = $2 } END { print ref }' Dockerfile)
[[ $base == *@* ]] && { echo "image.sh: the runtime FROM $base has a digest a local base cannot match" >&2; exit 1; }
# The base's file and creation times: the date in its tag (bookworm-YYYYMMDD),
# whichever commit first made it.
base_date=$(grep -o '[0-9]\{8\}' <<<"$base" | head -n1 || true)
base_epoch=$(date -u -d "${base_date:-19700101}" +%s)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mm_args=(--mode=root --format=tar --variant=minbase --include=ca-certificates
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  bookworm)
mm_sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main")
key=$(printf '%s\n' "$base_epoch" "${mm_args[@]}" "${mm_sources[@]}" | sha256sum | cut -c1-16)
rootfs=$dir/debian-bookworm-$key.tar
mkdir -p "$dir"
if [[ ! -s $rootfs ]]; then
  say "mmdebstrap: Debian bookworm minbase + ca-certificates -> $rootfs"
  rm -f "$dir"/debian-bookworm-*.tar
  SOURCE_DATE_EPOCH=$base_epoch mmdebstrap "${mm_args[@]}" "$rootfs.part" "${mm_sources[@]}" >"$dir/mmdebstrap.log" 2>&1 ||
    { tail -n 20 "$dir/mmdebstrap.log" >&2; exit 1; }
  mv "$rootfs.part" "$rootfs"
fi
# Stored once per root filesystem: the label names the cache key.
if [[ $(buildah "${storage[@]}" inspect --type image --format '{{index .ImageAnnotations "org.podstart.base-key"}}' "$base" 2>/dev/null) != "$key" ]]; then
  say "storing $rootfs in buildah's storage as $base"
  buildah "${storage[@]}" rmi -f "$base" >/dev/null 2>&1 || true
  ctr=$(buildah "${storage[@]}" from --pull-never scratch)
  buildah "${storage[@]}" add "$ctr" "$rootfs" / >/dev/null
  buildah "${storage[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash --os linux --arch amd64 --annotation "org.podstart.base-key=$key" "$ctr"
  buildah "${storage[@]}" commit --quiet --timestamp "$base_epoch" "$ctr" "$base" >/dev/null
  buildah "${storage[@]}" rm "$ctr" >/dev/null
fi

# --- 2. the image, from the Dockerfile ---------------------------------------
context=$dir/context
rm -rf "$context" && mkdir -p "$context/target/release"
cp "$bin" "$context/target/release/podstart"
# Debian's CA bundle, from the same root filesystem as the base.
tar -xOf "$rootfs" ./etc/ssl/certs/ca-certificates.crt >"$context/ca-certificates.crt"
say "buildah bud --build-arg BINARY=prebuilt ($version, $revision)"
buildah "${storage[@]}" bud --quiet --pull-never --format oci --layers=false \
  --timestamp "$SOURCE_DATE_EPOCH" --build-arg BINARY=prebuilt \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
  -f "$root/Dockerfile" -t "$IMAGE_NAME" "$context" >"$dir/bud.log" 2>&1 ||
  { cat "$dir/bud.log" >&2; exit 1; }
rm -f "$out"
buildah "${storage[@]}" push --quiet "$IMAGE_NAME" "oci-archive:$out:$IMAGE_NAME" >/dev/null
buildah "${storage[@]}" rm --all >/dev/null
# Earlier builds' images, now untagged.
buildah "${storage[@]}" rmi --prune >/dev/null 2>&1 || true

# --- 3. into containerd -------------------------------------------------------
if [[ -n ${CONTAINERD_ADDRESS:-} ]]; then
  say "importing into containerd ($CONTAINERD_ADDRESS, namespace k8s.io) as $IMAGE_NAME"
  ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import "$out" >/dev/null
  ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images ls "name==$IMAGE_NAME" | grep -qF "$IMAGE_NAME" ||
    { echo "image.sh: $IMAGE_NAME is not in containerd after the import" >&2; exit 1; }
fi

# --- 4. size and layers -------------------------------------------------------
python3 - "$out" <<'PY'
"""Prints the image's digest, size and layers from the OCI archive."""
import json, sys, tarfile

with tarfile.open(sys.argv[1]) as t:
    blob = lambda d: json.load(t.extractfile("blobs/" + d.replace(":", "/")))
    index = json.load(t.extractfile("index.json"))
    mdesc = index["manifests"][0]
    manifest = blob(mdesc["digest"])
    config = blob(manifest["config"]["digest"])
    def files(d):
        layer = tarfile.open(fileobj=t.extractfile("blobs/" + d.replace(":", "/")))
        return [m for m in layer if m.isfile()]
    total = sum(l["size"] for l in manifest["layers"])
    print(f"image {mdesc['annotations'].get('org.opencontainers.image.ref.name', '')}")
    print(f"  manifest {mdesc['digest']}")
    print(f"  size {total / 1e6:.1f} MB compressed ({total} bytes), {len(manifest['layers'])} layers")
    for i, layer in enumerate(manifest["layers"]):
        fs = files(layer["digest"])
        big = max(fs, key=lambda m: m.size)
        print(f"  layer {i}: {layer['digest'][:19]} {layer['size'] / 1e6:6.1f} MB compressed,"
              f" {sum(m.size for m in fs) / 1e6:6.1f} MB in {len(fs)} files (largest /{big.name.lstrip('./')},"
              f" {big.size / 1e6:.1f} MB)")
    labels = config.get("config", {}).get("Labels", {})
    print(f"  user {config['config'].get('User')}, entrypoint {config['config'].get('Entrypoint')}, cmd {config['config'].get('Cmd')}")
    print(f"  version {labels.get('org.opencontainers.image.version')}, revision {labels.get('org.opencontainers.image.revision')}")
PY
say "image built: $out"
