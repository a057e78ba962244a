#!/bin/bash
# Starts redis-server with the password from REDIS_PASSWORD, passed as configuration on
# stdin so that it is not on the command line (`ps` would show it). Extra arguments are
# passed on (e.g. --maxmemory 2gb).
set -euo pipefail
if [[ -z "${REDIS_PASSWORD:-}" ]]; then
  echo 'redis: REDIS_PASSWORD is not set (see .env.example)' >&2
  exit 1
fi
exec redis-server - \
  --bind 0.0.0.0 --port 6379 --dir /data \
  --appendonly yes --appendfsync everysec \
  --maxmemory-policy noeviction \
  "$@" <<<"requirepass ${REDIS_PASSWORD}"
