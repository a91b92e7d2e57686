/** `api-gateway --check` and `--healthcheck` (README, "Operations"): read the settings, probe, exit; never listen. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { makeCertificate, type Certificate } from '../helpers/certificates'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { type TestRedis, startRedis } from '../helpers/redis'
import { signingKey, startKeyServer, type KeyServer } from '../helpers/tokens'

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname

let backend: MockBackend
let redis: TestRedis
let idp: KeyServer
let certificate: Certificate
/** Every built-in service pointed at the live backend, so only what a test breaks fails. */
let servicesUp: Record<string, string>

beforeAll(async () => {
  backend = startBackend()
  redis = await startRedis()
  idp = startKeyServer([(await signingKey('ES256', 'k')).publicJwk])
  certificate = makeCertificate()
  servicesUp = Object.fromEntries(['ORCHESTRATOR', 'RUNNER', 'HITL', 'PARSER', 'FANOUT'].map((name) => [`${name}_URL`, backend.url]))
})

afterAll(async () => {
  backend.stop()
  await redis.stop()
  idp.stop()
  certificate.remove()
})

/** Runs the entry point without blocking this process, whose own servers the checks reach. */
async function run(args: string[], env: Record<string, string>) {
  const child = Bun.spawn(['bun', MAIN, ...args], { env: { PATH: process.env.PATH!, ...env }, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { exitCode, stdout, stderr }
}

test('--check with everything reachable: the effective settings (no secrets), every check ok, exit 0, nothing listening', async () => {
  const port = await closedPort()
  const result = await run(['--check'], {
    ...servicesUp,
    PORT: String(port),
    REDIS_URL: redis.url,
    AUTH_JWKS_URL: idp.url,
    TLS_CERT_FILE: certificate.certFile,
    TLS_KEY_FILE: certificate.keyFile,
    PUBLISH_TOKEN: 'never-printed-token',
    CIRCUIT_STATUSES: '502,503',
    SSE_MAX_STREAMS_PER_CLIENT: '7',
  })
  const withSecrets = await run(['--check'], { ...servicesUp, PORT: String(port), REDIS_URL: redis.url.replace('redis://', 'redis://user:never-printed-password@'), AUTH_JWT_SECRET: 'never-printed-secret-of-32-bytes!!' })
  for (const secret of ['never-printed-password', 'never-printed-secret']) expect(withSecrets.stdout + withSecrets.stderr).not.toContain(secret)
  expect(result.exitCode).toBe(0)
  expect(result.stdout).toContain(`"listen": "https://0.0.0.0:${port}"`)
  expect(JSON.parse(result.stdout.slice(result.stdout.indexOf('{'), result.stdout.indexOf('\n}\n') + 2))).toMatchObject({
    upstream: { circuit_statuses: [502, 503] },
    events: { max_streams_per_client: 7 },
  })
  for (const what of ['service runner', 'REDIS_URL: answers PING', 'TLS_CERT_FILE / TLS_KEY_FILE', 'AUTH_JWKS_URL: 1 keys']) expect(result.stdout).toContain(what)
  expect(result.stdout).toContain('all 8 checks passed')
  expect(result.stdout).not.toContain('never-printed-token')
  expect(await fetch(`https://127.0.0.1:${port}/health`, { tls: { rejectUnauthorized: false } }).then(() => 'answered', () => 'nothing')).toBe('nothing')
})

test('--check names what cannot be reached and exits 1', async () => {
  const down = `http://127.0.0.1:${await closedPort()}`
  const result = await run(['--check'], { ...servicesUp, RUNNER_URL: `${backend.url},${down}`, REDIS_URL: `redis://127.0.0.1:${await closedPort()}` })
  expect(result.exitCode).toBe(1)
  expect(result.stdout).toContain(`FAIL  service runner ${down}: cannot connect`)
  expect(result.stdout).toContain('FAIL  REDIS_URL: cannot connect')
  expect(result.stdout).toContain(`ok    service runner ${backend.url}: accepts connections`)
  expect(result.stdout).toContain('2 of 7 checks failed')
})

test('--check with a bad setting stops with the usual one line', async () => {
  const result = await run(['--check'], { PORT: 'eighty' })
  expect(result.exitCode).toBe(1)
  expect(result.stderr.trim()).toBe('api-gateway: invalid PORT="eighty": expected an integer from 1 to 65535')
})

test('--healthcheck exits 0 while the gateway on PORT answers /health, 1 when nothing does', async () => {
  let gw: RunningGateway | undefined
  try {
    gw = await startGateway()
    expect((await run(['--healthcheck'], { PORT: String(gw.port), HOST: '127.0.0.1' })).exitCode).toBe(0)
  } finally {
    await gw?.stop()
  }
  expect((await run(['--healthcheck'], { PORT: String(await closedPort()) })).exitCode).toBe(1)
})
