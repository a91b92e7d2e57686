/**
 * Compiles the gateway into one executable, `bin/api-gateway`.
 * NODE_ENV is fixed to production at build time so Elysia runs in production mode.
 *
 *   bun scripts/build.ts              always build
 *   bun scripts/build.ts --if-stale   build only when the binary is missing or older than a source
 */
import { $, Glob } from 'bun'
import { statSync } from 'node:fs'

const ROOT = new URL('..', import.meta.url).pathname
const OUTFILE = `${ROOT}bin/api-gateway`
const SOURCES = ['src/**/*.ts', 'package.json', 'bun.lock', 'tsconfig.json']

function newestSourceMtime(): number {
  let newest = 0
  for (const pattern of SOURCES) {
    for (const file of new Glob(pattern).scanSync({ cwd: ROOT })) newest = Math.max(newest, statSync(`${ROOT}${file}`).mtimeMs)
  }
  return newest
}

function isStale(): boolean {
  try {
    return statSync(OUTFILE).mtimeMs < newestSourceMtime()
  } catch {
    return true
  }
}

if (process.argv.includes('--if-stale') && !isStale()) process.exit(0)
await $`bun build --compile --minify --define process.env.NODE_ENV='"production"' ${ROOT}src/main.ts --outfile ${OUTFILE}`.quiet()
console.error(`built ${OUTFILE}`)
