/**
 * Reloading the policy file on SIGHUP (SPEC §12 "Reload", §7 workers): a valid file is applied
 * whole and at once (one `Configuration reloaded` line naming the added, removed and changed
 * services; `gateway_config_reloads_total{outcome="applied"}`), a file that fails validation
 * changes nothing (one error line, `outcome="rejected"`), SIGHUP without a file is logged and
 * ignored; nothing open is closed, instances keep their health, requests never fail because of
 * a reload even under load, and under WORKERS the supervisor validates, logs and counts once.
 *
 * Every gateway is its own process (`bun src/main.ts`) so the signal is a real one.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server, Subprocess } from 'bun'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import type { LogLine } from '../helpers/gateway'
import { type GatewayProcess, collectLines, startGatewayProcess } from '../helpers/gateway-process'
import { type TestRedis, startRedis } from '../helpers/redis'
import { openStream, publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'gw-reload-policies-'))
let files = 0

/** A new policy file holding `content` (an object is written as JSON, which is YAML). */
function policyFile(content: unknown): string {
  const path = join(dir, `policies-${files++}.yaml`)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2))
  return path
}

/** Replaces the file at `path` whole (written next to it, then renamed over it), as an editor or a deploy does. */
function rewrite(path: string, content: unknown): void {
  const next = `${path}.next`
  writeFileSync(next, typeof content === 'string' ? content : JSON.stringify(content, null, 2))
  renameSync(next, path)
}

const linesOf = (logs: LogLine[], msg: string) => logs.filter((l) => l.msg === msg)
const reloadedLines = (logs: LogLine[]) => linesOf(logs, 'Configuration reloaded')
const rejectedLines = (logs: LogLine[]) => logs.filter((l) => l.msg.startsWith('Configuration reload rejected'))

/** `gateway_config_reloads_total{outcome}` as `/metrics` reports it. */
async function reloadCounts(url: string, init: RequestInit = {}): Promise<{ applied: number; rejected: number }> {
  const text = await (await fetch(`${url}/metrics`, init)).text()
  const count = (outcome: string) => Number(new RegExp(`^gateway_config_reloads_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  return { applied: count('applied'), rejected: count('rejected') }
}

/** SIGHUP to `pid`, then wait until `logs` hold `count` lines that `matching` selects. */
async function signalAndWait(pid: number, logs: LogLine[], matching: (logs: LogLine[]) => LogLine[], count: number): Promise<void> {
  process.kill(pid, 'SIGHUP')
  expect(await waitFor(() => matching(logs).length >= count, 5_000)).toBe(true)
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Metric lines of one gauge or counter for one service and instance. */
function gauge(text: string, name: string, service: string, instance: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`service="${service}"`) && l.includes(`instance="${instance}"`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

let backend: MockBackend
const gateways: GatewayProcess[] = []

/** A gateway process with `env`, killed after the file's tests. */
async function gateway(env: Record<string, string>): Promise<GatewayProcess> {
  const gw = await startGatewayProcess({ RATE_LIMIT: '0', ...env })
  gateways.push(gw)
  return gw
}

beforeAll(() => {
  backend = startBackend(async (request) => {
    const path = new URL(request.url).pathname
    if (path.endsWith('/slow')) await Bun.sleep(1_500)
    return Response.json({ path, tag: request.headers.get('x-tag') })
  })
})

afterAll(async () => {
  await Promise.all(gateways.map((gw) => gw.kill()))
  backend.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('SIGHUP to one gateway process', () => {
  const v1 = () => ({
    services: {
      alpha: { url: backend.url, response_headers: { set: { 'X-Policy': 'v1' } }, routes: [{ path: '/old', methods: ['GET'] }] },
      beta: { url: backend.url },
      gamma: { url: backend.url, request_headers: { set: { 'X-Tag': 'g' } } },
    },
  })
  const v2 = () => ({
    services: {
      alpha: {
        url: backend.url,
        response_headers: { set: { 'X-Policy': 'v2' } },
        routes: [
          { path: '/old', methods: ['GET'] },
          { path: '/new', methods: ['POST'] },
        ],
      },
      gamma: { url: backend.url, request_headers: { set: { 'X-Tag': 'g' } } },
      delta: { url: backend.url },
    },
  })

  test('a changed file: one "Configuration reloaded" line naming the added, removed and changed services, counted as applied, and new requests see only the new policies', async () => {
    const file = policyFile(v1())
    const gw = await gateway({ GATEWAY_CONFIG: file })
    // Before: the old policies.
    expect((await fetch(`${gw.url}/api/v1/alpha/x`)).headers.get('x-policy')).toBe('v1')
    expect((await fetch(`${gw.url}/api/v1/alpha/new`)).status).toBe(200)
    expect((await fetch(`${gw.url}/api/v1/beta/x`)).status).toBe(200)
    expect((await fetch(`${gw.url}/api/v1/delta/x`)).status).toBe(404)
    expect(await reloadCounts(gw.url)).toEqual({ applied: 0, rejected: 0 })

    rewrite(file, v2())
    await signalAndWait(gw.pid, gw.logs, reloadedLines, 1)
    // A header rule changed.
    const alpha = await fetch(`${gw.url}/api/v1/alpha/x`)
    expect(alpha.status).toBe(200)
    expect(alpha.headers.get('x-policy')).toBe('v2')
    // A route added: its methods apply.
    const wrongMethod = await fetch(`${gw.url}/api/v1/alpha/new`)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toContain('POST')
    expect((await wrongMethod.json()).error).toBe('method_not_allowed')
    expect((await fetch(`${gw.url}/api/v1/alpha/new`, { method: 'POST', body: 'x' })).status).toBe(200)
    // A service removed: unknown to new requests.
    const beta = await fetch(`${gw.url}/api/v1/beta/x`)
    expect(beta.status).toBe(404)
    expect((await beta.json()).error).toBe('unknown_service')
    // A service added: proxied.
    const delta = await fetch(`${gw.url}/api/v1/delta/added`, { headers: { 'x-request-id': 'reload-delta-1' } })
    expect(delta.status).toBe(200)
    expect((await delta.json()).path).toBe('/added')
    expect(backend.seen.some((s) => s.target === '/added' && s.headers.get('x-request-id') === 'reload-delta-1')).toBe(true)
    // An unchanged service: as before.
    expect((await (await fetch(`${gw.url}/api/v1/gamma/x`)).json()).tag).toBe('g')

    await Bun.sleep(300)
    const lines = reloadedLines(gw.logs)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'info', file, added: ['delta'], removed: ['beta'], changed: ['alpha'] })
    expect(await reloadCounts(gw.url)).toEqual({ applied: 1, rejected: 0 })
  })

  test('a file that fails validation (invalid YAML, an unknown key, a value out of range) changes nothing: one error line each naming the file and the key path, counted as rejected; the process keeps serving the old policies', async () => {
    const file = policyFile(v1())
    const gw = await gateway({ GATEWAY_CONFIG: file })

    rewrite(file, 'services:\n  alpha: [unclosed\n')
    await signalAndWait(gw.pid, gw.logs, rejectedLines, 1)
    rewrite(file, { services: { alpha: { url: backend.url, rate_limt: { rate: 5 } } } })
    await signalAndWait(gw.pid, gw.logs, rejectedLines, 2)
    rewrite(file, { services: { alpha: { url: backend.url, routes: [{ path: '/old', timeout_ms: 0 }] } } })
    await signalAndWait(gw.pid, gw.logs, rejectedLines, 3)

    await Bun.sleep(300)
    const rejected = rejectedLines(gw.logs)
    expect(rejected).toHaveLength(3)
    for (const line of rejected) {
      expect(line.level).toBe('error')
      expect(line.file).toBe(file)
      expect(String(line.err)).toContain(file)
    }
    expect(String(rejected[0]!.err)).toContain('not valid YAML')
    expect(String(rejected[1]!.err)).toContain('services.alpha.rate_limt')
    expect(String(rejected[1]!.err)).toContain('did you mean rate_limit')
    expect(String(rejected[2]!.err)).toContain('services.alpha.routes[0].timeout_ms')
    expect(reloadedLines(gw.logs)).toHaveLength(0)
    expect(await reloadCounts(gw.url)).toEqual({ applied: 0, rejected: 3 })

    // Still running, still under v1.
    expect(alive(gw.pid)).toBe(true)
    expect((await fetch(`${gw.url}/health`)).status).toBe(200)
    expect((await fetch(`${gw.url}/api/v1/alpha/x`)).headers.get('x-policy')).toBe('v1')
    expect((await fetch(`${gw.url}/api/v1/alpha/old`, { method: 'POST' })).status).toBe(405)
    expect((await fetch(`${gw.url}/api/v1/beta/x`)).status).toBe(200)
    expect((await fetch(`${gw.url}/api/v1/delta/x`)).status).toBe(404)

    // A valid file afterwards is compared with what was in force (v1), not with a rejected one.
    rewrite(file, v2())
    await signalAndWait(gw.pid, gw.logs, reloadedLines, 1)
    expect(reloadedLines(gw.logs)[0]).toMatchObject({ added: ['delta'], removed: ['beta'], changed: ['alpha'] })
    expect(await reloadCounts(gw.url)).toEqual({ applied: 1, rejected: 3 })
  })

  test('SIGHUP without any policy file is logged and ignored: the process keeps serving', async () => {
    const gw = await gateway({ RUNNER_URL: backend.url })
    const ignored = (logs: LogLine[]) => logs.filter((l) => l.msg.startsWith('SIGHUP ignored'))
    await signalAndWait(gw.pid, gw.logs, ignored, 1)
    await signalAndWait(gw.pid, gw.logs, ignored, 2)
    expect(alive(gw.pid)).toBe(true)
    expect((await fetch(`${gw.url}/health`)).status).toBe(200)
    expect((await fetch(`${gw.url}/api/v1/runner/x`)).status).toBe(200)
    expect(reloadedLines(gw.logs)).toHaveLength(0)
    expect(rejectedLines(gw.logs)).toHaveLength(0)
  })

  test('nothing open is closed by a reload: an event stream keeps receiving, a WebSocket session keeps echoing, and slow requests in flight finish with 200 under the old policy although it shortened their timeout or removed their service', async () => {
    const echo: Server<undefined> = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      idleTimeout: 0,
      fetch: (request, server) => (server.upgrade(request) ? undefined : new Response('upgrade only', { status: 400 })),
      websocket: { idleTimeout: 0, message: (ws, message) => void ws.send(message) },
    })
    const echoUrl = `http://127.0.0.1:${echo.port}`
    const file = policyFile({
      services: {
        slow1: { url: backend.url, timeout_ms: 5000 },
        slow2: { url: backend.url, timeout_ms: 5000 },
        wsecho: { url: echoUrl },
      },
    })
    const gw = await gateway({ GATEWAY_CONFIG: file })
    const stream = await openStream(`${gw.url}/api/v1/events/keep-open-1`)
    let socket: WebSocket | undefined
    try {
      await stream.waitFor((e) => e.event === 'connection.established')
      socket = new WebSocket(`ws://127.0.0.1:${gw.port}/api/v1/wsecho/chat`)
      const messages: string[] = []
      let socketClosed = false
      socket.onmessage = (event) => messages.push(String(event.data))
      socket.onclose = () => (socketClosed = true)
      await new Promise<void>((resolve, reject) => {
        socket!.onopen = () => resolve()
        socket!.onerror = () => reject(new Error('the WebSocket through the gateway did not open'))
      })
      socket.send('before')
      expect(await waitFor(() => messages.includes('before'))).toBe(true)

      const seenBefore = backend.seen.length
      const started = performance.now()
      const inFlight = [fetch(`${gw.url}/api/v1/slow1/slow`), fetch(`${gw.url}/api/v1/slow2/slow`)]
      expect(await waitFor(() => backend.seen.slice(seenBefore).filter((s) => s.target === '/slow').length === 2)).toBe(true)

      rewrite(file, { services: { slow1: { url: backend.url, timeout_ms: 300 }, wsecho: { url: echoUrl, timeout_ms: 4000 } } })
      await signalAndWait(gw.pid, gw.logs, reloadedLines, 1)
      expect(reloadedLines(gw.logs)[0]).toMatchObject({ removed: ['slow2'], changed: expect.arrayContaining(['slow1', 'wsecho']) })

      // The stream: still open, and it receives what is published after the reload.
      const published = await publish(gw.url, 'keep-open-1', { event_type: 'run.progress', data: { after: 'reload' } })
      expect(published.status).toBe(202)
      expect(published.body.delivered).toBe(1)
      await stream.waitFor((e) => e.id === published.body.id)
      // The WebSocket session: still open, still both ways.
      socket.send('after')
      expect(await waitFor(() => messages.includes('after'))).toBe(true)
      expect(socketClosed).toBe(false)

      // The requests in flight: the old timeout (5 s) and the old service, so 200 after 1.5 s.
      const responses = await Promise.all(inFlight)
      expect(responses.map((r) => r.status)).toEqual([200, 200])
      expect(await Promise.all(responses.map(async (r) => (await r.json()).path))).toEqual(['/slow', '/slow'])
      expect(performance.now() - started).toBeGreaterThanOrEqual(1_400)

      // New requests: the new policies.
      const timedOut = await fetch(`${gw.url}/api/v1/slow1/slow`)
      expect(timedOut.status).toBe(504)
      expect((await timedOut.json()).error).toBe('gateway_timeout')
      const gone = await fetch(`${gw.url}/api/v1/slow2/slow`)
      expect(gone.status).toBe(404)
      expect((await gone.json()).error).toBe('unknown_service')

      // Nothing was closed meanwhile.
      const second = await publish(gw.url, 'keep-open-1', { event_type: 'run.progress', data: { later: true } })
      await stream.waitFor((e) => e.id === second.body.id)
      expect(gw.logs.some((l) => l.msg === 'Event stream closed' && l.client_id === 'keep-open-1')).toBe(false)
      expect(socketClosed).toBe(false)
    } finally {
      stream.close()
      socket?.close()
      echo.stop(true)
    }
  })

  test('an ejected instance stays ejected across a reload that keeps it: requests go on to the healthy instance without touching it, a lone ejected instance still answers 503, and the healthy gauges are kept', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`
    const deadAlone = `http://127.0.0.1:${await closedPort()}`
    const circuit = { failures: 1, cooldown_ms: 20_000 }
    const documentWith = (tag: string) => ({
      services: {
        pair: { url: [dead, backend.url], circuit, retries: 1, response_headers: { set: { 'X-Policy': tag } } },
        lone: { url: deadAlone, circuit, response_headers: { set: { 'X-Policy': tag } } },
      },
    })
    const file = policyFile(documentWith('v1'))
    const gw = await gateway({ GATEWAY_CONFIG: file })
    const ejected = (instance: string) => gw.logs.some((l) => l.msg === 'Upstream instance ejected after consecutive failures' && l.instance === instance)

    // Until the dead instance of `pair` has been tried once (and retried on the healthy one).
    for (let i = 0; i < 40 && !ejected(dead); i++) {
      expect((await fetch(`${gw.url}/api/v1/pair/warm`)).status).toBe(200)
      await Bun.sleep(5)
    }
    expect(await waitFor(() => ejected(dead))).toBe(true)
    expect((await fetch(`${gw.url}/api/v1/lone/x`)).status).toBe(502)
    expect(await waitFor(() => ejected(deadAlone))).toBe(true)
    expect((await fetch(`${gw.url}/api/v1/lone/x`)).status).toBe(503)
    let metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(gauge(metrics, 'gateway_upstream_healthy', 'pair', dead)).toBe(0)
    expect(gauge(metrics, 'gateway_upstream_healthy', 'pair', backend.url)).toBe(1)
    expect(gauge(metrics, 'gateway_upstream_healthy', 'lone', deadAlone)).toBe(0)

    rewrite(file, documentWith('v2'))
    await signalAndWait(gw.pid, gw.logs, reloadedLines, 1)
    expect(reloadedLines(gw.logs)[0]).toMatchObject({ changed: ['pair', 'lone'] })

    metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(gauge(metrics, 'gateway_upstream_healthy', 'pair', dead)).toBe(0)
    expect(gauge(metrics, 'gateway_upstream_healthy', 'pair', backend.url)).toBe(1)
    expect(gauge(metrics, 'gateway_upstream_healthy', 'lone', deadAlone)).toBe(0)
    expect(gauge(metrics, 'gateway_upstream_ejections_total', 'pair', dead)).toBe(1)

    const ids: string[] = []
    for (let i = 0; i < 20; i++) {
      const id = `after-reload-pair-${i}`
      ids.push(id)
      const response = await fetch(`${gw.url}/api/v1/pair/x`, { headers: { 'x-request-id': id } })
      expect(response.status).toBe(200)
      expect(response.headers.get('x-policy')).toBe('v2')
    }
    // Every one went straight to the healthy instance: one attempt, never the ejected one.
    const proxied = () => gw.logs.filter((l) => l.msg === 'Proxied request' && ids.includes(l.request_id as string))
    expect(await waitFor(() => proxied().length === 20)).toBe(true)
    for (const line of proxied()) expect(line).toMatchObject({ attempts: 1, target_url: backend.url, status: 200 })
    // The lone instance: still ejected, answered at once without a connection attempt.
    const lone = await fetch(`${gw.url}/api/v1/lone/x`)
    expect(lone.status).toBe(503)
    expect((await lone.json()).error).toBe('service_unavailable')
    expect(Number(lone.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(gw.logs.some((l) => l.msg.startsWith('Upstream instance restored'))).toBe(false)
  })

  test('a reload storm under load: 20 SIGHUPs alternating two valid files while 16 clients keep sending; no request to a service in both files fails, and 20 applied reloads are counted', async () => {
    const fileA = {
      services: {
        s1: { url: backend.url, response_headers: { set: { 'X-Gen': 'a' } } },
        s2: { url: backend.url, routes: [{ path: '/r', timeout_ms: 5000 }] },
        only_a: { url: backend.url },
      },
    }
    const fileB = {
      services: {
        s1: { url: backend.url, response_headers: { set: { 'X-Gen': 'b' } }, request_headers: { set: { 'X-Tag': 'b' } } },
        s2: { url: backend.url, timeout_ms: 4000, routes: [{ path: '/r', timeout_ms: 4500 }, { path: '/q' }] },
        only_b: { url: backend.url },
      },
    }
    const file = policyFile(fileA)
    const gw = await gateway({ GATEWAY_CONFIG: file })

    const statuses: number[] = []
    const generations = new Set<string | null>()
    let storming = true
    const client = async (n: number) => {
      for (let i = 0; storming || statuses.length < 600; i++) {
        const path = (n + i) % 2 === 0 ? '/api/v1/s1/x' : '/api/v1/s2/r/x'
        const status = await fetch(`${gw.url}${path}`).then(
          async (r) => {
            if (path.includes('/s1/')) generations.add(r.headers.get('x-gen'))
            await r.arrayBuffer()
            return r.status
          },
          () => 0,
        )
        statuses.push(status)
      }
    }
    const clients = Array.from({ length: 16 }, (_, n) => client(n))
    await Bun.sleep(50)
    for (let i = 0; i < 20; i++) {
      rewrite(file, i % 2 === 0 ? fileB : fileA)
      process.kill(gw.pid, 'SIGHUP')
      await Bun.sleep(50)
    }
    storming = false
    await Promise.all(clients)

    expect(statuses.length).toBeGreaterThanOrEqual(500)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    expect([...generations].sort()).toEqual(['a', 'b'])
    expect(await waitFor(() => reloadedLines(gw.logs).length === 20, 5_000)).toBe(true)
    expect(rejectedLines(gw.logs)).toHaveLength(0)
    expect(await reloadCounts(gw.url)).toEqual({ applied: 20, rejected: 0 })
    // The last file applied was A (the 20th write).
    expect((await fetch(`${gw.url}/api/v1/s1/x`)).headers.get('x-gen')).toBe('a')
  }, 30_000)
})

describe('SIGHUP to a WORKERS=2 supervisor', () => {
  interface Supervised {
    url: string
    child: Subprocess<'ignore', 'pipe', 'inherit'>
    logs: LogLine[]
  }
  let redis: TestRedis
  let gw: Supervised
  let file: string
  const workerPids = () => new Map(gw.logs.filter((l) => l.msg === 'Worker started').map((l) => [l.worker as number, l.pid as number]))
  /** A request on a connection of its own, so the kernel may hand it to either worker. */
  const fresh = (url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { connection: 'close', ...(init.headers as Record<string, string>) } })
  const workerOf = async (url: string) => ((await (await fresh(`${url}/health`)).json()) as { worker?: number }).worker
  let requests = 0

  /**
   * Fresh requests to `path` until each worker has answered one (its access log line says which),
   * checking `expectation` on every response.
   */
  async function onEveryWorker(path: string, expectation: (response: Response) => Promise<void>): Promise<Set<number>> {
    const ids: string[] = []
    const answeredBy = () => new Set(gw.logs.filter((l) => ids.includes(l.request_id as string)).map((l) => l.worker as number))
    for (let i = 0; i < 200 && answeredBy().size < 2; i++) {
      const id = `workers-reload-${requests++}`
      ids.push(id)
      await expectation(await fresh(`${gw.url}${path}`, { headers: { 'x-request-id': id } }))
      // Lines leave in batches (every 100 ms): look again now and then.
      if (i % 10 === 9) await waitFor(() => gw.logs.filter((l) => ids.includes(l.request_id as string)).length === ids.length, 1_000)
    }
    await waitFor(() => answeredBy().size === 2, 1_000)
    return answeredBy()
  }

  beforeAll(async () => {
    redis = await startRedis()
    file = policyFile({ services: { alpha: { url: backend.url, response_headers: { set: { 'X-Policy': 'v1' } } } } })
    const port = await closedPort()
    const child = Bun.spawn(['bun', MAIN], {
      env: { PATH: process.env.PATH!, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', WORKERS: '2', REDIS_URL: redis.url, RATE_LIMIT: '0', GATEWAY_CONFIG: file },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    gw = { url: `http://127.0.0.1:${port}`, child, logs: [] }
    void collectLines(child.stdout, gw.logs)
    expect(await waitFor(() => linesOf(gw.logs, 'api-gateway listening').length === 2, 15_000)).toBe(true)
    const seen = new Set<number | undefined>()
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await workerOf(gw.url).catch(() => undefined))
    expect(seen.has(1) && seen.has(2)).toBe(true)
  }, 30_000)

  afterAll(async () => {
    if (gw?.child.exitCode === null) gw.child.kill('SIGKILL')
    for (const pid of workerPids().values()) if (alive(pid)) process.kill(pid, 'SIGKILL')
    await redis?.stop()
  })

  test('a valid file: exactly one "Configuration reloaded" line, from the supervisor; applied counted once on /metrics of a worker; both workers serve the new policies', async () => {
    // Both workers run v1 first.
    const before = await onEveryWorker('/api/v1/alpha/x', async (r) => {
      expect(r.status).toBe(200)
      expect(r.headers.get('x-policy')).toBe('v1')
    })
    expect([...before].sort()).toEqual([1, 2])
    expect(await reloadCounts(gw.url, { headers: { connection: 'close' } })).toEqual({ applied: 0, rejected: 0 })

    rewrite(file, {
      services: {
        alpha: { url: backend.url, response_headers: { set: { 'X-Policy': 'v2' } } },
        delta: { url: backend.url },
      },
    })
    await signalAndWait(gw.child.pid, gw.logs, reloadedLines, 1)
    await Bun.sleep(500)
    const lines = reloadedLines(gw.logs)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.worker).toBeUndefined()
    expect(lines[0]).toMatchObject({ file, added: ['delta'], removed: [], changed: ['alpha'] })
    expect(gw.logs.some((l) => String(l.msg).includes('does not validate in this worker'))).toBe(false)
    expect(await reloadCounts(gw.url, { headers: { connection: 'close' } })).toEqual({ applied: 1, rejected: 0 })

    const changed = await onEveryWorker('/api/v1/alpha/x', async (r) => {
      expect(r.status).toBe(200)
      expect(r.headers.get('x-policy')).toBe('v2')
    })
    expect([...changed].sort()).toEqual([1, 2])
    const added = await onEveryWorker('/api/v1/delta/x', async (r) => {
      expect(r.status).toBe(200)
    })
    expect([...added].sort()).toEqual([1, 2])
  }, 30_000)

  test('a rejected file: logged once by the supervisor, counted once as rejected; both workers keep the policies in force', async () => {
    const appliedBefore = (await reloadCounts(gw.url, { headers: { connection: 'close' } })).applied
    rewrite(file, { services: { alpha: { url: backend.url, retries: 'many' } } })
    await signalAndWait(gw.child.pid, gw.logs, rejectedLines, 1)
    await Bun.sleep(500)
    const lines = rejectedLines(gw.logs)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.worker).toBeUndefined()
    expect(lines[0]!.level).toBe('error')
    expect(String(lines[0]!.err)).toContain(file)
    expect(String(lines[0]!.err)).toContain('services.alpha.retries')
    expect(await reloadCounts(gw.url, { headers: { connection: 'close' } })).toEqual({ applied: appliedBefore, rejected: 1 })
    const still = await onEveryWorker('/api/v1/alpha/x', async (r) => {
      expect(r.status).toBe(200)
      expect(r.headers.get('x-policy')).toBe(appliedBefore === 0 ? 'v1' : 'v2')
    })
    expect([...still].sort()).toEqual([1, 2])
    expect(alive(gw.child.pid)).toBe(true)
  }, 30_000)

  test('a worker started again while the file on disk does not validate (edited, never reloaded) runs what the supervisor validated last, and serves', async () => {
    // The file on disk is still the rejected one of the test before; the policies in force are v2.
    rewrite(file, { services: { alpha: { url: backend.url, retries: 'many' } } })
    const first = workerPids().get(1)!
    const startsBefore = gw.logs.filter((l) => l.msg === 'Worker started').length
    process.kill(first, 'SIGKILL')
    expect(await waitFor(() => gw.logs.filter((l) => l.msg === 'Worker started').length > startsBefore, 10_000)).toBe(true)
    expect(await waitFor(() => linesOf(gw.logs, 'api-gateway listening').length >= 3, 10_000)).toBe(true)
    const served = await onEveryWorker('/api/v1/alpha/x', async (r) => {
      expect(r.status).toBe(200)
      expect(r.headers.get('x-policy')).toBe('v2')
    })
    expect([...served].sort()).toEqual([1, 2])
    expect(gw.logs.some((l) => l.msg === 'Worker died: starting it again' && l.exit_code === 1)).toBe(false)
  }, 30_000)
})
