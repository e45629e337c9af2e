#!/usr/bin/env bash
# Runs the sidecar on this machine on its embedded store (NATS JetStream in the
# sidecar process, data in ./.hyvve-dev): nothing else to install but Go.
# Extra arguments go to the sidecar, e.g.
#   ./scripts/run-local.sh --app-url http://127.0.0.1:3000
# To use a Redis instead, pass --redis-url redis://127.0.0.1:6379/0.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

dir=.hyvve-dev
mkdir -p "$dir"
go build -o "$dir/sidecar" ./cmd/sidecar
echo "run-local: starting the sidecar on 127.0.0.1:4750 (embedded store in $dir/data, tenant dev)" >&2
exec "$dir/sidecar" --data-dir "$dir/data" --tenant dev "$@"
