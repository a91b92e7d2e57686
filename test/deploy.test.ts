/** The deploy files (README, "Operations"): what an operator installs must hold what the README promises. */
import { expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../src/config/settings'

const ROOT = new URL('..', import.meta.url).pathname
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')

/** `Key=value` lines of a unit file, last one wins. */
function unitSettings(text: string): Map<string, string> {
  const settings = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (match) settings.set(match[1]!, match[2]!)
  }
  return settings
}

test('the systemd unit: restart policy, room for 100,000 streams, hardening, an EnvironmentFile', () => {
  const unit = unitSettings(read('deploy/api-gateway.service'))
  expect(unit.get('Restart')).toBe('on-failure')
  expect(Number(unit.get('LimitNOFILE'))).toBeGreaterThanOrEqual(200_000)
  expect(unit.get('NoNewPrivileges')).toBe('yes')
  expect(unit.get('ProtectSystem')).toBe('strict')
  expect(unit.get('EnvironmentFile')).toBe('/etc/api-gateway/env')
  expect(unit.get('ExecStart')).toBe('/usr/local/bin/api-gateway')
  // systemctl reload: the policy file again, without a restart.
  expect(unit.get('ExecReload')).toBe('/bin/kill -HUP $MAINPID')
  // The drain (10 s, 12 s with workers) fits before systemd's SIGKILL.
  expect(Number.parseInt(unit.get('TimeoutStopSec')!)).toBeGreaterThan(12)
})

// scripts/test.sh installs systemd where it is missing, so CI runs this; elsewhere the skip is reported.
test.skipIf(!Bun.which('systemd-analyze'))('systemd-analyze verify accepts the unit', () => {
  // Verify checks that the executable exists: point it at the built binary.
  const unit = read('deploy/api-gateway.service').replaceAll('/usr/local/bin/api-gateway', join(ROOT, 'bin/api-gateway'))
  const path = join(tmpdir(), 'api-gateway.service')
  writeFileSync(path, unit)
  Bun.spawnSync(['bun', 'scripts/build.ts', '--if-stale'], { cwd: ROOT })
  const run = Bun.spawnSync(['systemd-analyze', 'verify', path], { stderr: 'pipe' })
  expect(run.stderr.toString().trim()).toBe('')
  expect(run.exitCode).toBe(0)
})

test('the Dockerfile: slim base, non-root, the release binary, HEALTHCHECK on /health through the binary', () => {
  const dockerfile = read('deploy/Dockerfile')
  expect(dockerfile).toMatch(/^FROM debian:[a-z]+-slim$/m)
  expect(dockerfile).toMatch(/^COPY dist\/api-gateway-\$\{VERSION\}-\$\{TARGET\} \/usr\/local\/bin\/api-gateway$/m)
  expect(dockerfile).toMatch(/^USER api-gateway$/m)
  expect(dockerfile).toMatch(/^HEALTHCHECK .*"--healthcheck"\]$/m)
})

test("the Dockerfile's default VERSION is the package's", async () => {
  const { version } = await Bun.file(join(ROOT, 'package.json')).json()
  expect(read('deploy/Dockerfile')).toContain(`ARG VERSION=${version}`)
})

test('the compose file: two gateways and one Redis with AOF behind them', () => {
  const compose = read('deploy/docker-compose.yml')
  expect(compose).toContain('"--appendonly", "yes"')
  expect(compose.match(/^ {2}gateway-[ab]:/gm)).toHaveLength(2)
  expect(compose).toContain('REDIS_URL: redis://redis:6379')
})

test('env.example holds valid settings', () => {
  const env: Record<string, string> = {}
  for (const line of read('deploy/env.example').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line)
    if (match) env[match[1]!] = match[2]!
  }
  expect(() => loadConfig(env)).not.toThrow()
  expect(loadConfig(env).services.get('runner')!.instances).toHaveLength(2)
})
