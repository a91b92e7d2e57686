/**
 * `bun run release`: cross-compiled executables in `dist/`, one per platform, named with the
 * version and the target, and `SHA256SUMS` beside them (README, "Installing"). Bun fetches the
 * runtime of each target from the npm registry the first time.
 *
 *   bun scripts/release.ts                                 every target
 *   bun scripts/release.ts --targets linux-x64,linux-arm64 some of them
 *   bun scripts/release.ts --out /tmp/release             elsewhere than dist/
 */
import { $ } from 'bun'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { VERSION } from '../src/ops/version'

const ROOT = new URL('..', import.meta.url).pathname
const DIST = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1]! : `${ROOT}dist`
/** Our target names, and Bun's. */
export const TARGETS: Readonly<Record<string, string>> = {
  'linux-x64': 'bun-linux-x64',
  'linux-x64-musl': 'bun-linux-x64-musl',
  'linux-arm64': 'bun-linux-arm64',
  'darwin-arm64': 'bun-darwin-arm64',
  'darwin-x64': 'bun-darwin-x64',
}

const requested = process.argv.includes('--targets') ? process.argv[process.argv.indexOf('--targets') + 1]!.split(',') : Object.keys(TARGETS)
for (const target of requested) if (!(target in TARGETS)) throw new Error(`unknown target ${target}; known: ${Object.keys(TARGETS).join(', ')}`)

// Only what an earlier release put there is removed: `--out` may name a directory holding other files.
mkdirSync(DIST, { recursive: true })
for (const file of readdirSync(DIST)) if (file.startsWith('api-gateway-') || file === 'SHA256SUMS') rmSync(`${DIST}/${file}`)
const sums: string[] = []
for (const target of requested) {
  const name = `api-gateway-${VERSION}-${target}`
  await $`bun build --compile --minify --target=${TARGETS[target]!} --define process.env.NODE_ENV='"production"' ${ROOT}src/main.ts --outfile ${DIST}/${name}`.quiet()
  // `sha256sum -c SHA256SUMS` format: hash, two spaces, file name.
  sums.push(`${createHash('sha256').update(readFileSync(`${DIST}/${name}`)).digest('hex')}  ${name}`)
  console.error(`built ${DIST}/${name}`)
}
writeFileSync(`${DIST}/SHA256SUMS`, `${sums.join('\n')}\n`)
console.error(`wrote ${DIST}/SHA256SUMS (${sums.length} files)`)
