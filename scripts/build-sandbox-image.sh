#!/usr/bin/env bash
# Build the Handoff sandbox image (sandbox/Dockerfile).
#
# Usage: scripts/build-sandbox-image.sh [--force]
#
#   --force   rebuild the sandbox image even if it already exists
#
# Environment:
#   HANDOFF_SANDBOX_IMAGE   image tag to build (default handoff-sandbox:latest)
#   HANDOFF_DEBIAN_MIRROR   Debian mirror for the registry-free base
#                           (default: first Debian mirror in the apt sources,
#                           else http://deb.debian.org/debian)
#   HANDOFF_BUILD_CA_FILE   PEM bundle that npm trusts while fetching the Node
#                           libraries, in a throwaway build stage only (it never
#                           reaches the final image). Default: this machine's
#                           system bundle, so builds behind a TLS-inspecting
#                           proxy work; set it to an empty string to disable.
#
# Base image: the public debian:bookworm-slim if it can be pulled (or is already
# present locally). Otherwise a registry-free base is made with debootstrap and
# imported as handoff-base:bookworm, so only the Debian and npm package
# mirrors need to be reachable. The debootstrap step needs root.
set -euo pipefail

readonly PUBLIC_BASE="debian:bookworm-slim"
readonly LOCAL_BASE="handoff-base:bookworm"
readonly SUITE="bookworm"
readonly DEFAULT_MIRROR="http://deb.debian.org/debian"
IMAGE="${HANDOFF_SANDBOX_IMAGE:-handoff-sandbox:latest}"

log() { printf '[sandbox-image] %s\n' "$*"; }
die() { printf '[sandbox-image] ERROR: %s\n' "$*" >&2; exit 1; }

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
[[ -f sandbox/Dockerfile ]] || die "sandbox/Dockerfile not found under $REPO_ROOT"

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is dockerd running, and may this user use it?)"

# The base image (the registry-free path included), image_exists and build_ca_file.
# shellcheck source=lib/debian-base.sh
source "$SCRIPT_DIR/lib/debian-base.sh"

if image_exists "$IMAGE" && [[ "$FORCE" -eq 0 ]]; then
  log "image $IMAGE already exists; nothing to do (pass --force to rebuild)"
  exit 0
fi

BASE_RERUN_ENV="$(printf 'HANDOFF_SANDBOX_IMAGE=%q ' "$IMAGE")"
ensure_debian_base

# Build from a temporary copy of sandbox/ so that an optional CA bundle can
# be added to the context without touching the work tree.
CA_FILE="$(build_ca_file)"
CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/handoff-sandbox-ctx.XXXXXX")"
# shellcheck disable=SC2064
trap "rm -rf '$CONTEXT'" EXIT
cp -a sandbox/. "$CONTEXT/"
rm -f "$CONTEXT"/build-ca*.pem
if [[ -n "$CA_FILE" ]]; then
  [[ -r "$CA_FILE" ]] || die "HANDOFF_BUILD_CA_FILE=$CA_FILE is not readable"
  cp "$CA_FILE" "$CONTEXT/build-ca.pem"
  log "npm will trust the CA bundle $CA_FILE during the build (not kept in the image)"
fi

log "building $IMAGE from $BASE"
t0=$SECONDS
docker build --network host --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" "$CONTEXT"
log "build finished in $((SECONDS - t0))s"
log "done: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE")"
