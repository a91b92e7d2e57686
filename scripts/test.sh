#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs Bun, the dependencies and the system packages
# the tests use (chromium for the browser test, redis-server for cluster mode, systemd for the
# unit check) when missing, builds the binary, typechecks, then runs `bun test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bun >/dev/null 2>&1; then
  echo "test.sh: installing Bun 1.4 with npm" >&2
  npm install --global --no-fund --no-audit bun@1.4 >&2
fi
bun install --frozen-lockfile

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
# systemd-analyze verifies the deploy unit (test/deploy.test.ts).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  # With recommends, as the machine probe installed and ran it (fonts, GL drivers for --disable-gpu fallbacks).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bun scripts/build.ts --if-stale
npx --no-install tsc --noEmit -p .

# Bun prints " N pass" / " N fail"; repeat them as one "N passed, N failed" line for CI logs.
set +e
bun test "$@" 2>&1 | tee /tmp/api-gateway-test.$$.log
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^ *[0-9]+ pass$' /tmp/api-gateway-test.$$.log | tail -1 | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^ *[0-9]+ fail$' /tmp/api-gateway-test.$$.log | tail -1 | grep -Eo '[0-9]+' || echo 0)
rm -f /tmp/api-gateway-test.$$.log
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
