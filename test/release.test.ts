/** `bun run release` (README, "Installing"): cross-compiled executables and their checksums. */
import { afterAll, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { VERSION } from '../src/ops/version'

const ROOT = new URL('..', import.meta.url).pathname
const out = mkdtempSync(join(tmpdir(), 'gateway-release-'))

afterAll(() => rmSync(out, { recursive: true, force: true }))

/** ELF header: byte 18 is the machine, 0x3e for x86-64 and 0xb7 for AArch64. */
const machineOf = (file: string) => readFileSync(file).subarray(0, 20)

test('linux-x64 and linux-arm64 are built with version and target in their names, SHA256SUMS beside them; the x64 one answers --version', () => {
  const run = Bun.spawnSync(['bun', 'scripts/release.ts', '--targets', 'linux-x64,linux-arm64', '--out', out], { cwd: ROOT, stderr: 'pipe', timeout: 240_000 })
  expect(run.exitCode).toBe(0)
  const x64 = `api-gateway-${VERSION}-linux-x64`
  const arm64 = `api-gateway-${VERSION}-linux-arm64`
  expect(readdirSync(out).sort()).toEqual(['SHA256SUMS', arm64, x64].sort())
  const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n')
  for (const name of [x64, arm64]) {
    const digest = createHash('sha256').update(readFileSync(join(out, name))).digest('hex')
    expect(sums).toContain(`${digest}  ${name}`)
  }
  const [x64Header, armHeader] = [machineOf(join(out, x64)), machineOf(join(out, arm64))]
  expect([x64Header.subarray(1, 4).toString(), x64Header[18], armHeader[18]]).toEqual(['ELF', 0x3e, 0xb7])
  const version = Bun.spawnSync([join(out, x64), '--version'])
  expect(version.stdout.toString().trim()).toBe(VERSION)
}, 300_000)
