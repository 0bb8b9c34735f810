# syntax=docker/dockerfile:1
#
# aigw container image. The builder runs the same build script CI and developers use
# (`cargo xtask dist`); the runtime image holds only the binary, the provider plugins and the
# config, with the same relative layout as the repository, so the repository's aigw.toml works
# unchanged:
#
#   /usr/local/bin/aigw
#   /opt/aigw/aigw.toml
#   /opt/aigw/dist/plugins/*.wasm
#
# Build: docker build -t aigw .
# Run:   docker run --rm -p 8080:8080 -e AIGW_ADMIN_KEY -e GROQ_API_KEY aigw
#        (the container listens on 0.0.0.0, so aigw refuses to start without authentication:
#        AIGW_ADMIN_KEY turns it on, and clients then need virtual keys from POST /admin/keys;
#        see docs/security.md. Pass the provider keys aigw.toml reads too.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the cargo registry and both target dirs between builds; dist/ (the output)
# lives outside them, so it lands in the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/src/plugins/target \
    cargo xtask dist

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aigw \
    && useradd --system --uid 10001 --gid aigw --home-dir /opt/aigw --shell /usr/sbin/nologin aigw \
    && install -d -o aigw -g aigw /opt/aigw /opt/aigw/data
COPY --from=build /src/dist/bin/aigw /usr/local/bin/aigw
COPY --from=build /src/dist/plugins /opt/aigw/dist/plugins
COPY --from=build /src/aigw.toml /opt/aigw/aigw.toml
# The working directory belongs to the service user (files the gateway writes, such as its memory
# database, go here; data/ is where docker-compose.yml mounts the replicas' shared volume, which
# takes this ownership when it is first created); the binary, plugins and config stay root-owned
# and read-only to it.
WORKDIR /opt/aigw
USER 10001:10001
EXPOSE 8080
# Ready means serving and not draining (503 from SIGTERM on). No curl in the image: bash's
# /dev/tcp sends the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
CMD ["aigw", "serve", "--config", "/opt/aigw/aigw.toml", "--listen", "0.0.0.0:8080"]
