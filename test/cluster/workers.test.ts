/**
 * WORKERS=2 with a real redis-server (README, "Workers"): the process started is a supervisor
 * of two worker processes on one port (SO_REUSEPORT). Fresh connections show which worker
 * answered (`/health` says), so each behaviour is shown across both.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import type { LogLine } from '../helpers/gateway'
import { collectLines } from '../helpers/gateway-process'
import { type TestRedis, startRedis } from '../helpers/redis'
import { openStream, publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname

interface Supervised {
  url: string
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  logs: LogLine[]
  stderr: () => string
}

/** Starts `bun src/main.ts` with `env` and collects its lines (the workers write to the same stdout). */
async function startSupervised(env: Record<string, string>): Promise<Supervised> {
  const port = await closedPort()
  const child = Bun.spawn(['bun', MAIN], {
    env: { PATH: process.env.PATH!, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const logs: LogLine[] = []
  let stderr = ''
  void collectLines(child.stdout, logs)
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true })
  })()
  return { url: `http://127.0.0.1:${port}`, child, logs, stderr: () => stderr }
}

/** A request on a connection of its own, so the kernel may hand it to either worker. */
const fresh = (url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { connection: 'close', ...(init.headers as Record<string, string>) } })
const workerOf = async (url: string) => ((await (await fresh(`${url}/health`)).json()) as { worker?: number }).worker
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
const workerPids = (gw: Supervised) => new Map(gw.logs.filter((l) => l.msg === 'Worker started').map((l) => [l.worker as number, l.pid as number]))

let redis: TestRedis
let backend: MockBackend
let gw: Supervised

beforeAll(async () => {
  redis = await startRedis()
  backend = startBackend(() => Response.json({ ok: true }))
  gw = await startSupervised({
    WORKERS: '2',
    REDIS_URL: redis.url,
    RUNNER_URL: backend.url,
    // Each test limits its own client address, through X-Forwarded-For from the trusted loopback.
    TRUST_PROXY: '127.0.0.1',
    // Loopback is a trusted proxy here, so it has no loopback grant: publishing needs the token.
    PUBLISH_TOKEN: 'workers-publisher',
    RATE_LIMIT: '60',
    RATE_LIMIT_BURST: '10',
  })
  const seen = new Set<number | undefined>()
  expect(await waitFor(() => gw.logs.filter((l) => l.msg === 'api-gateway listening').length === 2, 15_000)).toBe(true)
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await workerOf(gw.url).catch(() => undefined))
}, 30_000)

afterAll(async () => {
  if (gw.child.exitCode === null) gw.child.kill('SIGKILL')
  for (const pid of workerPids(gw).values()) if (alive(pid)) process.kill(pid, 'SIGKILL')
  await redis.stop()
  backend.stop()
})

describe('WORKERS=2', () => {
  test('both workers serve, on one port: fresh connections reach each of them', async () => {
    const seen = new Set<number | undefined>()
    for (let i = 0; i < 100 && seen.size < 2; i++) seen.add(await workerOf(gw.url))
    expect([...seen].sort()).toEqual([1, 2])
    // Every worker's lines carry its id; the supervisor's do not.
    const listening = gw.logs.filter((l) => l.msg === 'api-gateway listening').map((l) => l.worker)
    expect(listening.sort()).toEqual([1, 2])
  })

  test('16 streams of one client, spread over both workers, each receive a publish once', async () => {
    // Each open stream holds its connection, so every one of them is a new connection.
    const streams = await Promise.all(Array.from({ length: 16 }, (_, i) => openStream(`${gw.url}/api/v1/events/spread-client`, { 'x-forwarded-for': `198.18.0.${i}` })))
    try {
      await Promise.all(streams.map((s) => s.waitFor((e) => e.event === 'connection.established')))
      const opened = () => gw.logs.filter((l) => l.msg === 'Event stream opened' && l.client_id === 'spread-client')
      // Log lines leave in batches (every 100 ms).
      expect(await waitFor(() => opened().length === 16)).toBe(true)
      expect(new Set(opened().map((l) => l.worker))).toEqual(new Set([1, 2]))
      const { status, body } = await publish(gw.url, 'spread-client', { event_type: 'run.progress', data: { step: 1 } }, { authorization: 'Bearer workers-publisher' })
      expect(status).toBe(202)
      expect(body.delivered).toBe(16)
      await Promise.all(streams.map((s) => s.waitFor((e) => e.event === 'run.progress', 5_000)))
      await Bun.sleep(200)
      for (const stream of streams) expect(stream.events.filter((e) => e.event === 'run.progress')).toHaveLength(1)
    } finally {
      for (const stream of streams) stream.close()
    }
  })

  test('one rate-limit budget across the workers', async () => {
    const statuses: number[] = []
    const workers = new Set<number>()
    for (let i = 0; i < 12; i++) {
      const response = await fresh(`${gw.url}/api/v1/runner/x`, { headers: { 'x-forwarded-for': '203.0.113.77' } })
      statuses.push(response.status)
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200))
    expect(statuses.slice(10)).toEqual([429, 429])
    // The twelve went to both workers: the budget they shared was Redis's, not a worker's own.
    expect(await waitFor(() => gw.logs.filter((l) => l.client_ip === '203.0.113.77').length === 12)).toBe(true)
    for (const line of gw.logs.filter((l) => l.client_ip === '203.0.113.77')) workers.add(line.worker as number)
    expect(workers.size).toBe(2)
  })

  test('/metrics from any worker is the sum over both; per-process figures carry a worker label', async () => {
    const total = async () => {
      const text = await (await fresh(`${gw.url}/metrics`)).text()
      return { text, requests: [...text.matchAll(/^gateway_requests_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0) }
    }
    const before = await total()
    for (let i = 0; i < 30; i++) await fresh(`${gw.url}/api/v1/runner/y`, { headers: { 'x-forwarded-for': `198.51.100.${i}` } })
    const after = await total()
    // Thirty requests and one scrape, over both workers; the sum sees them all.
    expect(after.requests - before.requests).toBe(31)
    expect(after.text).toMatch(/^process_resident_memory_bytes\{worker="1"\} \d+/m)
    expect(after.text).toMatch(/^process_resident_memory_bytes\{worker="2"\} \d+/m)
    expect(after.text).toMatch(/^process_start_time_seconds\{worker="2"\} \d+/m)
    // Gauges that count things are summed too: streams open on both workers.
    const streams = await Promise.all(Array.from({ length: 8 }, (_, i) => openStream(`${gw.url}/api/v1/events/gauge-client`, { 'x-forwarded-for': `198.19.0.${i}` })))
    try {
      await Promise.all(streams.map((s) => s.waitFor((e) => e.event === 'connection.established')))
      const text = await (await fresh(`${gw.url}/metrics`)).text()
      expect(text).toMatch(/^gateway_sse_connections 8$/m)
      expect(Number(/^gateway_request_duration_seconds_count (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(after.requests)
    } finally {
      for (const stream of streams) stream.close()
    }
  })

  test('a SIGKILLed worker is replaced while requests keep succeeding, and counts do not go down', async () => {
    const metricsTotal = async () =>
      [...(await (await fresh(`${gw.url}/metrics`)).text()).matchAll(/^gateway_requests_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
    const countedBefore = await metricsTotal()
    const victim = workerPids(gw).get(1)!
    process.kill(victim, 'SIGKILL')
    let ok = 0
    let failed = 0
    const until = Date.now() + 3_000
    for (let i = 0; Date.now() < until; i++) {
      // A client address per request: the budget is not what this test is about.
      const status = await fresh(`${gw.url}/api/v1/runner/z`, { headers: { 'x-forwarded-for': `100.64.${i >> 8}.${i & 255}` } }).then((r) => r.status, () => 0)
      if (status === 200) ok++
      else failed++
      await Bun.sleep(5)
    }
    expect(ok).toBeGreaterThan(failed)
    expect(await waitFor(() => workerPids(gw).get(1) !== victim, 5_000)).toBe(true)
    expect(alive(workerPids(gw).get(1)!)).toBe(true)
    expect(gw.logs.some((l) => l.msg === 'Worker died: starting it again' && l.worker === 1)).toBe(true)
    expect(await metricsTotal()).toBeGreaterThanOrEqual(countedBefore)
    const seen = new Set<number | undefined>()
    for (let i = 0; i < 100 && seen.size < 2; i++) seen.add(await workerOf(gw.url).catch(() => undefined))
    expect(seen.has(1) && seen.has(2)).toBe(true)
  }, 20_000)

  test('SIGTERM drains every worker and the supervisor exits 0, with no worker left behind', async () => {
    const pids = [...workerPids(gw).entries()].filter(([id]) => id === 1 || id === 2).map(([, pid]) => pid)
    const current = [...new Set(pids)].filter(alive)
    expect(current.length).toBe(2)
    const stream = await openStream(`${gw.url}/api/v1/events/draining-client`, { 'x-forwarded-for': '198.20.0.1' })
    await stream.waitFor((e) => e.event === 'connection.established')
    const stoppedBefore = gw.logs.filter((l) => l.msg === 'Stopped').length
    gw.child.kill('SIGTERM')
    expect(await gw.child.exited).toBe(0)
    for (const pid of current) expect(alive(pid)).toBe(false)
    // Each worker drained (it says so), and its event stream was closed by it, not cut.
    await stream.ended
    await Bun.sleep(200)
    const stopped = gw.logs.filter((l) => l.msg === 'Stopped').slice(stoppedBefore)
    expect(stopped.map((l) => l.worker).sort()).toEqual([1, 2])
    expect(gw.logs.some((l) => l.msg === 'Event stream closed' && l.client_id === 'draining-client' && l.reason === 'shutdown')).toBe(true)
  }, 20_000)
})

describe('settings and failures', () => {
  test('WORKERS above 1 without REDIS_URL stops the start with one line naming both', () => {
    const run = Bun.spawnSync(['bun', MAIN], { env: { PATH: process.env.PATH!, WORKERS: '2' }, timeout: 10_000 })
    expect(run.exitCode).toBe(1)
    const lines = run.stderr.toString().trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('WORKERS=2 needs REDIS_URL')
  })

  test('workers stop by themselves when their supervisor is killed (no worker outlives it)', async () => {
    const orphaned = await startSupervised({ WORKERS: '2', REDIS_URL: redis.url })
    // As soon as the workers exist, before they have even loaded their settings.
    expect(await waitFor(() => workerPids(orphaned).size === 2, 15_000)).toBe(true)
    const pids = [...workerPids(orphaned).values()]
    orphaned.child.kill('SIGKILL')
    await orphaned.child.exited
    expect(await waitFor(() => pids.every((pid) => !alive(pid)), 5_000)).toBe(true)
  }, 30_000)

  test('a worker that keeps dying at start stops the gateway with one clear line (exit 1), not a restart loop', async () => {
    // The port is taken: every worker fails to listen at once.
    const squatter = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
    const broken = await startSupervised({ WORKERS: '2', REDIS_URL: redis.url, PORT: String(squatter.port) })
    try {
      expect(await broken.child.exited).toBe(1)
      expect(broken.stderr()).toMatch(/api-gateway: worker \d died 5 times in a row within 10 s of its start/)
      const started = broken.logs.filter((l) => l.msg === 'Worker started')
      expect(started.length).toBeLessThanOrEqual(2 * 5)
      for (const line of started) expect(alive(line.pid as number)).toBe(false)
    } finally {
      squatter.stop(true)
    }
  }, 40_000)
})
