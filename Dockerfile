# syntax=docker/dockerfile:1
# podstart image: the release binary on Debian 12 slim, nothing else but CA
# certificates. Build from the repository root:
#
#   docker build -t podstart:dev --build-arg VERSION=$(git describe --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# The binary links glibc, libm and libgcc_s dynamically (no OpenSSL): the
# builder and the runtime are both Debian 12 (glibc 2.36), and
# scripts/chart-test.sh checks with ldd that the release build needs nothing
# more. Base images are pinned by exact tag (and the runtime by digest);
# RUST_VERSION must equal rust-toolchain.toml's channel (checked there too).

ARG RUST_VERSION=1.95.0

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

FROM debian:bookworm-20260824-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171
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
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The path cargo's release build writes; scripts/chart-test.sh checks this line.
COPY --from=build /src/target/release/podstart /usr/local/bin/podstart
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
