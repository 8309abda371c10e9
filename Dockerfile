# syntax=docker/dockerfile:1
# podstart image: the release binary on Debian 12 slim, nothing else but CA
# certificates. Build from the repository root:
#
#   docker build -t podstart:dev --build-arg VERSION=$(git describe --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# BINARY=prebuilt takes a binary cargo already built instead of compiling one:
# the build context then holds target/release/podstart and the CA bundle
# ca-certificates.crt (scripts/image.sh assembles such a context and builds
# it with buildah, no Docker engine needed):
#
#   docker build -t podstart:dev --build-arg BINARY=prebuilt -f Dockerfile <context>
#
# The binary links glibc, libm and libgcc_s dynamically (no OpenSSL): the
# builder and the runtime are both Debian 12 (glibc 2.36), and
# scripts/chart-test.sh checks with ldd that the release build needs nothing
# more. RUST_VERSION must equal rust-toolchain.toml's channel (checked there
# too).
#
# Base images are pinned by exact tag. A digest is added only once verified
# against the registry, e.g.
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/debian:bookworm-20260824-slim
# (or GET https://registry-1.docker.io/v2/library/debian/manifests/<tag> with
# Accept: application/vnd.oci.image.index.v1+json, header Docker-Content-Digest),
# then written as FROM debian:<tag>@sha256:<digest>. Neither base's digest has
# been verified yet. scripts/image.sh builds FROM a local Debian bookworm
# root filesystem (mmdebstrap) stored under the runtime FROM's name.

ARG RUST_VERSION=1.95.0
# build: compile in the rust image; prebuilt: copy the build context's
# target/release/podstart and ca-certificates.crt. BuildKit and buildah build
# only the stage chosen.
ARG BINARY=build

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG RUST_VERSION
# The toolchain of the image, without rustup fetching rust-toolchain.toml's
# extra components (rustfmt, clippy) that a release build does not use.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never
# protoc: podstart's API and the CRI crate compile .proto files at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler=3.21.12-3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bin podstart \
    && /src/target/release/podstart --version

# The binary cargo built outside, at the path the build stage writes.
FROM scratch AS prebuilt
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY target/release/podstart /src/target/release/podstart

FROM ${BINARY} AS binary

FROM debian:bookworm-20260824-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="podstart" \
      org.opencontainers.image.description="Starts pods on a node the way the kubelet does, over the CRI, and streams every step" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260824-slim"
COPY --from=binary /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The path cargo's release build writes; scripts/chart-test.sh checks this line.
COPY --from=binary /src/target/release/podstart /usr/local/bin/podstart
# Non-root by default. The runtime socket is root:root 0660 unless the runtime
# gives it a group: run as uid 0 (the Helm chart's default, every capability
# dropped) or add that group (docker run --group-add <gid>).
USER 65532:65532
# /healthz on the metrics port (default 127.0.0.1:9464) with bash alone, as
# the image has no HTTP or gRPC client. Kubernetes ignores HEALTHCHECK: the
# chart probes /healthz and /readyz (the kubelet's gRPC probes cannot reach
# podstart's unix socket).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/podstart"]
CMD ["serve"]
