#!/usr/bin/env bash
# `npm run bench` / `bun run bench` (add `-- --quick` for a pass of about two minutes): installs Bun and the
# dependencies when missing, then runs scripts/bench/run.ts, which installs wrk and nginx itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bun >/dev/null 2>&1; then
  echo "bench.sh: installing Bun 1.4 with npm" >&2
  npm install --global --no-fund --no-audit bun@1.4 >&2
fi
[ -d node_modules ] || bun install --frozen-lockfile
exec bun scripts/bench/run.ts "$@"
