#!/usr/bin/env bash
# `npm start`: makes sure what Handoff needs is here, then runs `handoff dev`.
# As root it installs what is missing with apt; otherwise it prints the exact line to run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[start] %s\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=0
apt_install() {
  if ! is_root; then
    say "missing: $*"
    say "install it with:  sudo apt-get install -y $*"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  say "installing $* with apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node $(node -v) is too old: Handoff needs Node 20 or newer"; exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm install (not npm ci) honours the lock file and tolerates optional per-platform
  # packages that a registry mirror does not carry; npm ci refuses those.
  say "installing npm dependencies"
  npm install --no-audit --no-fund
fi

if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  apt_install redis-server
fi

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then apt_install docker.io; fi
  if ! docker info >/dev/null 2>&1; then
    if ! is_root; then
      say "Docker is installed but not reachable by $(id -un)."
      say "start it with:  sudo systemctl start docker && sudo usermod -aG docker $(id -un)   (then log in again)"
      exit 1
    fi
    if [ -d /run/systemd/system ]; then
      systemctl start docker
    else
      mkdir -p .handoff
      say "starting dockerd (log: .handoff/dockerd.log)"
      # Its own session, so stopping Handoff (Ctrl-C) does not stop Docker with it.
      setsid nohup dockerd >.handoff/dockerd.log 2>&1 < /dev/null &
    fi
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { say "dockerd did not start; see .handoff/dockerd.log"; exit 1; }
  fi
fi

image="${HANDOFF_SANDBOX_IMAGE:-handoff-sandbox:latest}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  # The registry-free build path needs debootstrap.
  command -v debootstrap >/dev/null || apt_install debootstrap
  say "building the sandbox image $image (first start only; takes a few minutes)"
  bash scripts/build-sandbox-image.sh
fi

# Stop with whatever started us: if it is killed outright (kill -9), Handoff shuts down
# instead of holding the port and the data dir for nobody.
export HANDOFF_EXIT_WITH_PARENT=1
exec node bin/handoff.js dev
