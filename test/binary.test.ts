import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { type MockBackend, closedPort, startBackend } from './helpers/backend'
import { makeCertificate } from './helpers/certificates'
import { signedToken, signingKey, startKeyServer } from './helpers/tokens'

const ROOT = new URL('..', import.meta.url).pathname
const BINARY = `${ROOT}bin/api-gateway`

let backend: MockBackend
let gateway: Subprocess<'ignore', 'pipe', 'pipe'>
let url: string
let stdout = ''

/** Reads the binary's stdout until a line matching `pattern` appears. */
async function waitForLine(reader: ReadableStreamDefaultReader<Uint8Array>, pattern: RegExp): Promise<string> {
  const decoder = new TextDecoder()
  for (;;) {
    const match = stdout.split('\n').find((line) => pattern.test(line))
    if (match) return match
    const { done, value } = await reader.read()
    if (done) throw new Error(`binary exited before printing ${pattern}; output: ${stdout}`)
    stdout += decoder.decode(value)
  }
}

beforeAll(async () => {
  const build = Bun.spawnSync(['bun', `${ROOT}scripts/build.ts`, '--if-stale'], { cwd: ROOT, stderr: 'pipe' })
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr}`)
  backend = startBackend(async (request) => {
    if (new URL(request.url).pathname === '/slow') await Bun.sleep(500)
    return Response.json({ from: 'backend', target: new URL(request.url).pathname })
  })
  const port = await closedPort()
  url = `http://127.0.0.1:${port}`
  gateway = Bun.spawn([BINARY], {
    env: { PATH: process.env.PATH!, PORT: String(port), HOST: '127.0.0.1', ORCHESTRATOR_URL: backend.url },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
}, 60_000)

afterAll(() => {
  gateway.kill('SIGKILL')
  backend.stop()
})

describe('the compiled binary', () => {
  test('logs a startup line with the port and the registered services, in production mode', async () => {
    const reader = gateway.stdout.getReader()
    const line = JSON.parse(await waitForLine(reader, /api-gateway listening/))
    reader.releaseLock()
    expect(line.level).toBe('info')
    expect(line.mode).toBe('production')
    expect(line.port).toBe(Number(new URL(url).port))
    expect(line.services.orchestrator).toBe(backend.url)
    expect(Object.keys(line.services)).toEqual(expect.arrayContaining(['runner', 'hitl', 'parser', 'fanout']))
  })

  test('proxies a request to the backend', async () => {
    const response = await fetch(`${url}/api/v1/orchestrator/workflows`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ from: 'backend', target: '/workflows' })
  })

  test('SIGTERM lets the in-flight request finish, then exits 0', async () => {
    const inFlight = fetch(`${url}/api/v1/orchestrator/slow`)
    await Bun.sleep(150)
    gateway.kill('SIGTERM')
    const response = await inFlight
    expect(response.status).toBe(200)
    expect(await gateway.exited).toBe(0)
  })
})

describe('the compiled binary with authentication and TLS', () => {
  test('verifies an RS256 token against a JWKS and serves HTTPS; the backend gets X-Auth-Subject and https', async () => {
    const certificate = makeCertificate()
    const key = await signingKey('RS256', 'binary-key')
    const idp = startKeyServer([key.publicJwk])
    const port = await closedPort()
    const secured = Bun.spawn([BINARY], {
      env: {
        PATH: process.env.PATH!,
        PORT: String(port),
        HOST: '127.0.0.1',
        ORCHESTRATOR_URL: backend.url,
        AUTH_JWKS_URL: idp.url,
        TLS_CERT_FILE: certificate.certFile,
        TLS_KEY_FILE: certificate.keyFile,
      },
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'inherit',
    })
    try {
      const base = `https://127.0.0.1:${port}`
      const tls = { ca: certificate.cert }
      let health = 0
      for (let i = 0; i < 100 && health !== 200; i++) health = await fetch(`${base}/health`, { tls }).then((r) => r.status, async () => (await Bun.sleep(50), 0))
      expect(health).toBe(200)
      expect((await fetch(`${base}/api/v1/orchestrator/x`, { tls })).status).toBe(401)
      const token = await signedToken(key, { claims: { sub: 'binary-user' } })
      const response = await fetch(`${base}/api/v1/orchestrator/x`, { tls, headers: { authorization: `Bearer ${token}` } })
      expect(response.status).toBe(200)
      const seen = backend.seen.at(-1)!
      expect([seen.headers.get('x-auth-subject'), seen.headers.get('x-forwarded-proto')]).toEqual(['binary-user', 'https'])
    } finally {
      secured.kill('SIGKILL')
      idp.stop()
      certificate.remove()
    }
  }, 30_000)
})

describe("the compiled binary never prints a URL's credentials", () => {
  const SECRET = 's3cret'
  const run = (env: Record<string, string>, args: string[] = []) => {
    const result = Bun.spawnSync([BINARY, ...args], { env: { PATH: process.env.PATH!, HOST: '127.0.0.1', ...env }, timeout: 15_000 })
    return { exitCode: result.exitCode, output: result.stdout.toString() + result.stderr.toString() }
  }

  const badSettings: [string, string][] = [
    ['ORCHESTRATOR_URL', `http://admin:${SECRET}@127.0.0.1:8080`],
    ['RUNNER_URL', `http://127.0.0.1:1,http://admin:${SECRET}@127.0.0.1:2/x?y=1`],
    ['RUNNER_URL', `http://127.0.0.1:1,ftp://admin:${SECRET}@127.0.0.1:2`],
    ['PARSER_URL', `admin:${SECRET}@127.0.0.1:8084`],
    ['EVENTS_URL', `http://admin:${SECRET}@127.0.0.1:9000`],
    ['REDIS_URL', `redis://:s3/${SECRET}@127.0.0.1:6379/x`],
    ['REDIS_URL', `redis://user:s3,${SECRET}@127.0.0.1:6379/db`],
    ['REDIS_URL', `redis://admin:${SECRET}://@127.0.0.1:6379/x`],
    ['AUTH_JWKS_URL', `ftp://user:${SECRET}@127.0.0.1/jwks`],
  ]
  for (const [variable, value] of badSettings) {
    test(`${variable}=${value.replace(SECRET, '<secret>')}: exit 1, one line, the password masked`, () => {
      const { exitCode, output } = run({ [variable]: value })
      expect(exitCode).toBe(1)
      expect(output.trim().split('\n')).toHaveLength(1)
      expect(output).toContain(variable)
      expect(output).toContain('***@')
      expect(output).not.toContain(SECRET)
    })
  }

  test('a URL whose host was forgotten, so that the password reads as its port, is masked too', () => {
    const { exitCode, output } = run({ REDIS_URL: `redis://default:${SECRET}` })
    expect(exitCode).toBe(1)
    expect(output).toContain('redis://default:***')
    expect(output).not.toContain(SECRET)
  })

  test('--check with a Redis and a JWKS URL that carry passwords masks them, reachable or not', async () => {
    const closed = await closedPort()
    const { exitCode, output } = run({ REDIS_URL: `redis://user:${SECRET}@127.0.0.1:${closed}/0`, AUTH_JWKS_URL: `http://user:${SECRET}@127.0.0.1:${closed}/jwks` }, ['--check'])
    expect(exitCode).toBe(1)
    expect(output).toContain('REDIS_URL')
    expect(output).not.toContain(SECRET)
  })

  test("a JWKS that cannot be fetched is logged without the URL's password", async () => {
    const port = await closedPort()
    const child = Bun.spawn([BINARY], {
      env: { PATH: process.env.PATH!, HOST: '127.0.0.1', PORT: String(port), AUTH_JWKS_URL: `http://user:${SECRET}@127.0.0.1:${await closedPort()}/jwks` },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    })
    try {
      const reader = child.stdout.getReader()
      const decoder = new TextDecoder()
      let output = ''
      while (!output.includes('JWKS cannot be fetched')) {
        const { done, value } = await reader.read()
        if (done) break
        output += decoder.decode(value)
      }
      expect(output).toContain('JWKS cannot be fetched')
      expect(output).not.toContain(SECRET)
    } finally {
      child.kill('SIGKILL')
    }
  }, 20_000)
})

describe('the compiled binary with a policy file', () => {
  test('serves per-route policies, refuses an ambiguous spelling, and applies a changed file on SIGHUP', async () => {
    const dir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/gw-binary-policies-`)
    const file = `${dir}/policies.yaml`
    const write = (publicAuth: string) =>
      Bun.write(
        file,
        `services:\n  shop:\n    url: ${backend.url}\n    routes:\n      - path: /public\n        auth: ${publicAuth}\n        response_headers: { set: { X-Policy: "${publicAuth}" } }\n`,
      )
    await write('off')
    const port = await closedPort()
    const child = Bun.spawn([BINARY], {
      env: { PATH: process.env.PATH!, PORT: String(port), HOST: '127.0.0.1', GATEWAY_CONFIG: file, AUTH_JWT_SECRET: 'binary-policies-secret-of-32-bytes!' },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    try {
      const base = `http://127.0.0.1:${port}`
      let health = 0
      for (let i = 0; i < 100 && health !== 200; i++) health = await fetch(`${base}/health`).then((r) => r.status, async () => (await Bun.sleep(50), 0))
      const open = await fetch(`${base}/api/v1/shop/public/x`)
      expect([open.status, open.headers.get('x-policy')]).toEqual([200, 'off'])
      expect((await fetch(`${base}/api/v1/shop/private/x`)).status).toBe(401)
      const ambiguous = await fetch(`${base}/api/v1/shop/public/..;/private`)
      expect([400, 401]).toContain(ambiguous.status)
      await write('required')
      child.kill('SIGHUP')
      let status = 200
      for (let i = 0; i < 100 && status === 200; i++) {
        await Bun.sleep(20)
        status = (await fetch(`${base}/api/v1/shop/public/x`)).status
      }
      expect(status).toBe(401)
    } finally {
      child.kill('SIGKILL')
    }
  }, 30_000)
})
