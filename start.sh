#!/usr/bin/env bash
# Installs what the gateway needs (Bun, dependencies), builds bin/api-gateway when it is missing
# or older than the sources, then runs it. Settings come from the environment (see README).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v bun >/dev/null 2>&1; then
  echo "start.sh: installing Bun 1.4 with npm" >&2
  npm install --global --no-fund --no-audit bun@1.4 >&2
fi
if [ ! -d node_modules ] || [ package.json -nt node_modules ] || [ bun.lock -nt node_modules ]; then
  bun install --frozen-lockfile >&2
  touch node_modules
fi
bun scripts/build.ts --if-stale
exec ./bin/api-gateway "$@"
