#!/usr/bin/env bash
# Runs the sidecar on this machine with a throw-away local redis-server
# (data in ./.hyvve-dev). Extra arguments go to the sidecar, e.g.
#   ./scripts/run-local.sh --app-url http://127.0.0.1:3000
# The redis-server is stopped when the sidecar exits.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-local: installing redis-server with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "run-local: redis-server is not installed; install it (e.g. apt-get install redis-server) and run again" >&2
    exit 1
  fi
fi

dir=.hyvve-dev
port=${HYVVE_DEV_REDIS_PORT:-6390}
mkdir -p "$dir"
redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/$dir" --appendonly yes \
  --daemonize yes --pidfile "$PWD/$dir/redis.pid" --logfile "$PWD/$dir/redis.log"
trap 'kill "$(cat "$PWD/$dir/redis.pid")" 2>/dev/null || true' EXIT
trap 'exit 143' TERM INT # so that the EXIT trap stops redis on Ctrl-C or SIGTERM too
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "run-local: redis-server on 127.0.0.1:$port (data in $dir); starting the sidecar on 127.0.0.1:4750" >&2
go run ./cmd/sidecar --redis-url "redis://127.0.0.1:$port/0" --tenant dev "$@"
