import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { type MockBackend, closedPort, startBackend } from './helpers/backend'

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
