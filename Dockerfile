# syntax=docker/dockerfile:1
#
# ambassador-xds: `docker build -t ambassador-xds .` builds the product image (the last stage).
# `--target demo-init` builds the demo's one-shot certificate and config generator instead
# (docker-compose.yml uses both).

# ---- build: the official Rust toolchain image ----
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ambassador-xds \
    && install -m 0755 target/release/ambassador-xds /usr/local/bin/ambassador-xds

# ---- demo-init: openssl and demo/init.sh, nothing else (see docker-compose.yml) ----
FROM debian:bookworm-slim AS demo-init
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
COPY demo/init.sh demo/upstream-envoy.yaml.in /opt/demo/
ENTRYPOINT ["/opt/demo/init.sh"]

# ---- runtime: the product image, a slim Debian with the one binary, as a non-root user ----
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 ambassador \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin ambassador
COPY --from=build /usr/local/bin/ambassador-xds /usr/local/bin/ambassador-xds
USER 10001:10001
# xDS (ADS/SDS) and the health endpoint (--health-address: /healthz, /readyz). The admin endpoint
# binds loopback by default and is not exposed; the Envoy listener port belongs to Envoy.
EXPOSE 18000 8878
ENTRYPOINT ["ambassador-xds"]
CMD ["--help"]
