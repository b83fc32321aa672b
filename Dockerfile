# syntax=docker/dockerfile:1
# The `garou` binary (gateway, terminal clients, `garou cert`) in a small non-root image.
#
#   docker build -t garou .
#   docker run --rm -p 8080:8080 -p 4433:4433/udp garou                 # one node, SQLite
#   docker compose up                                                    # a cluster: compose.yaml
#
# The chat page (web/) and the wasm client package (wasm-client/pkg/, committed) are
# embedded in the binary at build time, so the runtime image needs no other file.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied
# out of the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p garou-cli \
    && install -D -m 0755 target/release/garou /out/garou

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 garou \
    && useradd --system --uid 10001 --gid garou --home-dir /var/lib/garou --shell /usr/sbin/nologin garou \
    && mkdir -p /var/lib/garou /certs \
    && chown garou:garou /var/lib/garou /certs
COPY --from=build /out/garou /usr/local/bin/garou
USER 10001:10001
WORKDIR /var/lib/garou
# The default `--data` is ./data, so a single node's SQLite store and uploads land in this
# volume. Listening: [::]:8080 and [::]:4433 (dual stack) unless --http / --quic or
# GAROU_HTTP / GAROU_QUIC say otherwise (compose.yaml sets 0.0.0.0: IPv4-only networks).
VOLUME ["/var/lib/garou"]
# 8080/tcp: the page, /cert-hash, /health, /ready, /metrics, the HTTP API, the WebSocket
# fallback. 4433/udp: raw QUIC and WebTransport (one port for both).
EXPOSE 8080/tcp 4433/udp
ENTRYPOINT ["garou"]
CMD ["serve"]
