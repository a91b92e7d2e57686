/**
 * `Upstreams` / `Upstream` on their own, without a gateway: which target a service's exchange
 * goes to, what reaches a real backend and what comes back, how each way of failing is
 * classified (kind, service, the client's error, the metric), and that nothing is left waiting.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import { loadConfig } from '../../src/config/settings'
import type { ErrorCode } from '../../src/http/errors'
import { Metrics } from '../../src/ops/metrics'
import { FAILURES, type FailureKind, UpstreamFailure } from '../../src/upstream/failures'
import { type UpstreamRequest, Upstreams, WATCH_CLIENT_AFTER_MS, pathOn } from '../../src/upstream/upstream'
import { createLogger } from '../../src/ops/log'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { waitFor } from '../helpers/wait'

const GZIPPED = gzipSync('a body the gateway must not decompress '.repeat(20))

let backend: MockBackend
/** Accepts connections and never answers. */
let silentServer: net.Server
/** Resets the connection once the request arrives. */
let resetServer: net.Server
const rawSockets = new Set<net.Socket>()
let silentUrl: string
let resetUrl: string
let closedUrl: string

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

function track(socket: net.Socket): void {
  rawSockets.add(socket)
  socket.on('error', () => {})
  socket.on('close', () => rawSockets.delete(socket))
}

beforeAll(async () => {
  backend = startBackend(async (request) => {
    const path = new URL(request.url).pathname
    if (path.endsWith('/redirect')) return new Response(null, { status: 302, headers: { location: '/elsewhere' } })
    if (path.endsWith('/moved')) return new Response('moved', { status: 301, headers: { location: `${backend.url}/elsewhere` } })
    if (path.endsWith('/gzip')) return new Response(GZIPPED, { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } })
    if (path.endsWith('/late')) {
      await Bun.sleep(3 * WATCH_CLIENT_AFTER_MS)
      return new Response('late but fine')
    }
    if (path.endsWith('/private')) return new Response('ok', { headers: { connection: 'x-private', 'x-private': '1', 'keep-alive': 'timeout=5', 'x-public': '1' } })
    if (path.endsWith('/teapot')) return new Response('short and stout', { status: 418, headers: { 'x-backend': 'teapot' } })
    return new Response(`${request.method} answered`, { status: 201, headers: { 'x-backend': 'ok' } })
  })
  silentServer = net.createServer(track)
  resetServer = net.createServer((socket) => {
    track(socket)
    socket.once('data', () => socket.resetAndDestroy())
  })
  silentUrl = `http://127.0.0.1:${await listen(silentServer)}`
  resetUrl = `http://127.0.0.1:${await listen(resetServer)}`
  closedUrl = `http://127.0.0.1:${await closedPort()}`
})

afterAll(() => {
  backend.stop()
  for (const socket of rawSockets) socket.destroy()
  silentServer.close()
  resetServer.close()
})

/** A fresh `Upstreams` with its own metrics, closed by `finally` in the test. */
function upstreamsFor(env: Record<string, string>): { upstreams: Upstreams; metrics: Metrics } {
  const metrics = new Metrics()
  return { upstreams: new Upstreams(loadConfig(env), metrics, createLogger('silent')), metrics }
}

function request(target: string, extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', target, headers: new Headers(), body: null, declaredLength: null, ...extra }
}

/** The `UpstreamFailure` the call rejects with; fails the test if it resolves or throws anything else. */
async function failureOf(call: Promise<Response>): Promise<UpstreamFailure> {
  let outcome: unknown
  try {
    const response = await call
    outcome = `a response with status ${response.status}`
  } catch (error) {
    outcome = error
  }
  expect(outcome).toBeInstanceOf(UpstreamFailure)
  return outcome as UpstreamFailure
}

/** `gateway_upstream_errors_total` for one service and kind, 0 when the series does not exist. */
async function errorCount(metrics: Metrics, service: string, kind: string): Promise<number> {
  const prefix = `gateway_upstream_errors_total{service="${service}",kind="${kind}"} `
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(prefix))
  return line === undefined ? 0 : Number(line.slice(prefix.length))
}

/** Every `gateway_upstream_errors_total` series, as `service/kind` → count. */
async function errorSeries(metrics: Metrics): Promise<Record<string, number>> {
  const series: Record<string, number> = {}
  for (const line of (await metrics.registry.metrics()).split('\n')) {
    const match = /^gateway_upstream_errors_total\{service="([^"]*)",kind="([^"]*)"\} (\S+)$/.exec(line)
    if (match) series[`${match[1]}/${match[2]}`] = Number(match[3])
  }
  return series
}

/** A chunked body of `chunks` × `chunkBytes` bytes. */
function streamOf(chunks: number, chunkBytes: number): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < chunks; i++) controller.enqueue(new Uint8Array(chunkBytes).fill(0x61))
      controller.close()
    },
  })
}


/**
 * A client of a real server that goes away: a tiny `Bun.serve` "front" calls the upstream with
 * its own request as `client`, and the test aborts its fetch of the front after `abortAfterMs`.
 * Resolves with how the upstream call ended (its failure, or the status it answered).
 */
async function callWithDepartingClient(upstreams: Upstreams, service: string, abortAfterMs: number): Promise<{ failure?: UpstreamFailure; status?: number; other?: unknown }> {
  let outcome: { failure?: UpstreamFailure; status?: number; other?: unknown } | undefined
  const front = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(clientRequest, server) {
      server.timeout(clientRequest, 0)
      try {
        const response = await upstreams.get(service)!.call(request('/wait', { client: clientRequest }))
        outcome = { status: response.status }
        return response
      } catch (error) {
        outcome = error instanceof UpstreamFailure ? { failure: error } : { other: error }
        return new Response('failed', { status: 502 })
      }
    },
  })
  try {
    const controller = new AbortController()
    const pending = fetch(`http://127.0.0.1:${front.port}/`, { signal: controller.signal }).then(
      () => 'answered',
      () => 'aborted',
    )
    await Bun.sleep(abortAfterMs)
    controller.abort()
    expect(await pending).toBe('aborted')
    expect(await waitFor(() => outcome !== undefined, 3_000)).toBe(true)
    return outcome!
  } finally {
    front.stop(true)
  }
}

describe('target choice', () => {
  test('get(name) returns the service registered under that name, and undefined for any other', () => {
    const { upstreams } = upstreamsFor({ MY_SERVICE_URL: 'http://h:9000/base', RUNNER_URL: 'http://10.0.0.7:8082' })
    try {
      expect(upstreams.get('my_service')?.name).toBe('my_service')
      expect(upstreams.get('runner')?.name).toBe('runner')
      expect(upstreams.get('hitl')?.name).toBe('hitl') // a built-in, not overridden
      for (const other of ['nope', 'MY_SERVICE', 'my-service', 'events', '']) expect(upstreams.get(other)).toBeUndefined()
    } finally {
      upstreams.close()
    }
  })

  test('pathOn() keeps the base path; an empty path is the base path, or / without one', () => {
    const config = loadConfig({ X_URL: 'http://h:9000/base', Y_URL: 'http://h:9000', Z_URL: 'http://h:9000/' })
    const [x, y, z] = ['x', 'y', 'z'].map((name) => config.services.get(name)!.instances[0]!)
    expect(pathOn(x!, '/a')).toBe('/base/a')
    expect(pathOn(x!, '/a/b')).toBe('/base/a/b')
    expect(pathOn(x!, '')).toBe('/base')
    expect(pathOn(y!, '')).toBe('/')
    expect(pathOn(y!, '/a')).toBe('/a')
    expect(pathOn(z!, '')).toBe('/')
  })

})

describe('call() on a real backend', () => {
  test('base path + path + query arrive byte-exact, with the method, headers and string body', async () => {
    const { upstreams } = upstreamsFor({ X_URL: `${backend.url}/base` })
    try {
      const before = backend.seen.length
      const response = await upstreams.get('x')!.call({
        method: 'POST',
        target: '/a%2Fb/c?q=%41&b=&c=a+b&d=%7e',
        headers: new Headers({ 'x-custom': 'yes', 'content-type': 'text/plain' }),
        body: 'hello backend',
        declaredLength: 13,
      })
      expect(response.status).toBe(201)
      expect(response.headers.get('x-backend')).toBe('ok')
      expect(await response.text()).toBe('POST answered')
      expect(backend.seen.length).toBe(before + 1)
      const seen = backend.seen.at(-1)!
      expect(seen.method).toBe('POST')
      expect(seen.target).toBe('/base/a%2Fb/c?q=%41&b=&c=a+b&d=%7e')
      expect(seen.body).toBe('hello backend')
      expect(seen.headers.get('x-custom')).toBe('yes')
      expect(seen.headers.get('content-type')).toBe('text/plain')
    } finally {
      upstreams.close()
    }
  })

  test('an empty target or a bare query goes to the base path (or /)', async () => {
    const { upstreams } = upstreamsFor({ X_URL: `${backend.url}/base`, Y_URL: backend.url })
    try {
      for (const [service, target, expected] of [
        ['x', '', '/base'],
        ['x', '?q=%41&b=', '/base?q=%41&b='],
        ['y', '', '/'],
        ['y', '?q=%41&b=', '/?q=%41&b='],
      ] as const) {
        const response = await upstreams.get(service)!.call(request(target))
        expect(response.status).toBe(201)
        await response.arrayBuffer()
        expect(backend.seen.at(-1)!.target).toBe(expected)
      }
    } finally {
      upstreams.close()
    }
  })

  test('the backend’s own error status, headers and body come back untouched', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: backend.url })
    try {
      const response = await upstreams.get('x')!.call(request('/teapot', { method: 'DELETE' }))
      expect(response.status).toBe(418)
      expect(response.headers.get('x-backend')).toBe('teapot')
      expect(await response.text()).toBe('short and stout')
      expect(backend.seen.at(-1)!.method).toBe('DELETE')
      expect(await errorSeries(metrics)).toEqual({})
    } finally {
      upstreams.close()
    }
  })

  test('redirects are returned with their Location, not followed', async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url })
    try {
      const before = backend.seen.length
      const relative = await upstreams.get('x')!.call(request('/redirect'))
      expect(relative.status).toBe(302)
      expect(relative.headers.get('location')).toBe('/elsewhere')
      await relative.arrayBuffer()
      const absolute = await upstreams.get('x')!.call(request('/moved'))
      expect(absolute.status).toBe(301)
      expect(absolute.headers.get('location')).toBe(`${backend.url}/elsewhere`)
      expect(await absolute.text()).toBe('moved')
      // Only the two requests reached the backend: nothing went on to /elsewhere.
      expect(backend.seen.slice(before).map((s) => s.target)).toEqual(['/redirect', '/moved'])
    } finally {
      upstreams.close()
    }
  })

  test('a gzip body stays compressed: content-encoding and the raw bytes are kept', async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url })
    try {
      const response = await upstreams.get('x')!.call(request('/gzip', { headers: new Headers({ 'accept-encoding': 'gzip' }) }))
      expect(response.status).toBe(200)
      expect(response.headers.get('content-encoding')).toBe('gzip')
      const bytes = new Uint8Array(await response.arrayBuffer())
      expect(bytes.byteLength).toBe(GZIPPED.byteLength)
      expect(Buffer.from(bytes).equals(GZIPPED)).toBe(true)
    } finally {
      upstreams.close()
    }
  })

  test("the response's hop-by-hop headers, and those its Connection names, are dropped", async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url })
    try {
      const response = await upstreams.get('x')!.call(request('/private'))
      for (const name of ['connection', 'keep-alive', 'x-private']) expect(response.headers.has(name)).toBe(false)
      expect(response.headers.get('x-public')).toBe('1')
    } finally {
      upstreams.close()
    }
  })

  test('a streamed body of exactly MAX_BODY_BYTES without a declared length is forwarded whole', async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url, MAX_BODY_BYTES: '1000' })
    try {
      const response = await upstreams.get('x')!.call(request('/upload', { method: 'POST', body: streamOf(4, 250), declaredLength: null }))
      expect(response.status).toBe(201)
      await response.arrayBuffer()
      expect(backend.seen.at(-1)!.body).toBe('a'.repeat(1000))
    } finally {
      upstreams.close()
    }
  })

  test('a client that stays while the backend takes longer than the watch delay gets the response', async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url, UPSTREAM_TIMEOUT_MS: '30000' })
    let outcome: number | string | undefined
    const front = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(clientRequest, server) {
        server.timeout(clientRequest, 0)
        try {
          const response = await upstreams.get('x')!.call(request('/late', { client: clientRequest }))
          outcome = response.status
          return response
        } catch (error) {
          outcome = error instanceof UpstreamFailure ? error.kind : String(error)
          return new Response('failed', { status: 502 })
        }
      },
    })
    try {
      const response = await fetch(`http://127.0.0.1:${front.port}/`)
      expect(await response.text()).toBe('late but fine')
      expect(outcome).toBe(200)
      expect(upstreams.waiting).toBe(0)
    } finally {
      front.stop(true)
      upstreams.close()
    }
  })
})

describe('failure classification', () => {
  function expectClientError(failure: UpstreamFailure, kind: FailureKind, code: ErrorCode, status: number): void {
    expect(FAILURES[kind].error).toBe(code)
    const error = failure.toGatewayError()
    expect(error.code).toBe(code)
    expect(error.status).toBe(status)
    expect(error.message.startsWith(`${failure.service}: `)).toBe(true)
  }

  interface FailureCase {
    name: string
    env: () => Record<string, string>
    request: () => UpstreamRequest
    kind: FailureKind
    code: ErrorCode
    status: number
    /** Counted in gateway_upstream_errors_total: the backend is at fault. */
    counted: boolean
    /** A detail the message must name. */
    mentions?: string
  }

  const cases: FailureCase[] = [
    { name: 'a closed port', env: () => ({ X_URL: closedUrl }), request: () => request('/a'), kind: 'connect', code: 'bad_gateway', status: 502, counted: true },
    {
      name: 'a backend that resets the connection after reading the request',
      env: () => ({ X_URL: resetUrl }),
      request: () => request('/a'),
      kind: 'reset',
      code: 'bad_gateway',
      status: 502,
      counted: true,
    },
    {
      name: 'a backend that never answers within UPSTREAM_TIMEOUT_MS',
      env: () => ({ X_URL: silentUrl, UPSTREAM_TIMEOUT_MS: '200' }),
      request: () => request('/a'),
      kind: 'timeout',
      code: 'gateway_timeout',
      status: 504,
      counted: true,
      mentions: '200 ms',
    },
    {
      name: 'a streamed body without declared length past MAX_BODY_BYTES',
      env: () => ({ X_URL: backend.url, MAX_BODY_BYTES: '1000' }),
      request: () => request('/upload', { method: 'POST', body: streamOf(5, 400), declaredLength: null }),
      kind: 'too_large',
      code: 'payload_too_large',
      status: 413,
      counted: false,
      mentions: '1000 bytes',
    },
  ]

  for (const c of cases) {
    test(`${c.name} → ${c.kind}, ${c.status} ${c.code}, ${c.counted ? 'counted' : 'not counted'}`, async () => {
      const { upstreams, metrics } = upstreamsFor(c.env())
      try {
        const started = performance.now()
        const failure = await failureOf(upstreams.get('x')!.call(c.request()))
        // Never before the deadline (same clock as the queue); no upper bound asserted.
        if (c.kind === 'timeout') expect(performance.now() - started).toBeGreaterThanOrEqual(199)
        expect(failure.kind).toBe(c.kind)
        expect(failure.service).toBe('x')
        if (c.mentions !== undefined) expect(failure.message).toContain(c.mentions)
        expectClientError(failure, c.kind, c.code, c.status)
        expect(await errorCount(metrics, 'x', c.kind)).toBe(c.counted ? 1 : 0)
        expect(upstreams.waiting).toBe(0)
      } finally {
        upstreams.close()
      }
    })
  }

  test('a client that goes away while waiting for headers → client_gone, 502 bad_gateway, not counted', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: silentUrl, UPSTREAM_TIMEOUT_MS: '30000' })
    try {
      // Gone before the watch starts: noticed once the exchange has waited WATCH_CLIENT_AFTER_MS.
      const outcome = await callWithDepartingClient(upstreams, 'x', 50)
      expect(outcome.other).toBeUndefined()
      expect(outcome.failure).toBeInstanceOf(UpstreamFailure)
      expect(outcome.failure!.kind).toBe('client_gone')
      expect(outcome.failure!.service).toBe('x')
      expectClientError(outcome.failure!, 'client_gone', 'bad_gateway', 502)
      expect(FAILURES.client_gone.loggedStatus).toBe(499)
      expect(await errorCount(metrics, 'x', 'client_gone')).toBe(0)
      expect(upstreams.waiting).toBe(0)
    } finally {
      upstreams.close()
    }
  })

  test('a client that goes away after its watch has started → client_gone as well', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: silentUrl, UPSTREAM_TIMEOUT_MS: '30000' })
    try {
      const outcome = await callWithDepartingClient(upstreams, 'x', 3 * WATCH_CLIENT_AFTER_MS)
      expect(outcome.failure?.kind).toBe('client_gone')
      expect(await errorCount(metrics, 'x', 'client_gone')).toBe(0)
      expect(upstreams.waiting).toBe(0)
    } finally {
      upstreams.close()
    }
  })
})

describe('metrics and waiting', () => {
  test('gateway_upstream_errors_total counts connect, reset and timeout per service, never too_large or client_gone', async () => {
    const { upstreams, metrics } = upstreamsFor({
      CLOSED_URL: closedUrl,
      RESET_URL: resetUrl,
      SILENT_URL: silentUrl,
      OK_URL: backend.url,
      UPSTREAM_TIMEOUT_MS: '200',
      MAX_BODY_BYTES: '100',
    })
    try {
      const kinds: FailureKind[] = []
      for (let i = 0; i < 2; i++) kinds.push((await failureOf(upstreams.get('closed')!.call(request('/a')))).kind)
      kinds.push((await failureOf(upstreams.get('reset')!.call(request('/a')))).kind)
      kinds.push((await failureOf(upstreams.get('silent')!.call(request('/a')))).kind)
      kinds.push((await failureOf(upstreams.get('ok')!.call(request('/upload', { method: 'POST', body: streamOf(3, 100) })))).kind)
      expect(kinds).toEqual(['connect', 'connect', 'reset', 'timeout', 'too_large'])
      expect(await errorSeries(metrics)).toEqual({ 'closed/connect': 2, 'reset/reset': 1, 'silent/timeout': 1 })
    } finally {
      upstreams.close()
    }
  })

  test('waiting counts exchanges in flight and goes back to 0 after successes and every failure', async () => {
    const { upstreams } = upstreamsFor({
      OK_URL: backend.url,
      CLOSED_URL: closedUrl,
      RESET_URL: resetUrl,
      SILENT_URL: silentUrl,
      UPSTREAM_TIMEOUT_MS: '300',
      MAX_BODY_BYTES: '100',
    })
    try {
      expect(upstreams.waiting).toBe(0)
      const ok = await upstreams.get('ok')!.call(request('/a'))
      expect(upstreams.waiting).toBe(0)
      await ok.arrayBuffer()

      // Three at once against the silent backend: all three wait, then all time out.
      const pending = [1, 2, 3].map(() => failureOf(upstreams.get('silent')!.call(request('/a'))))
      expect(upstreams.waiting).toBe(3)
      expect((await Promise.all(pending)).map((f) => f.kind)).toEqual(['timeout', 'timeout', 'timeout'])
      expect(upstreams.waiting).toBe(0)

      await failureOf(upstreams.get('closed')!.call(request('/a')))
      expect(upstreams.waiting).toBe(0)
      await failureOf(upstreams.get('reset')!.call(request('/a')))
      expect(upstreams.waiting).toBe(0)
      await failureOf(upstreams.get('ok')!.call(request('/upload', { method: 'POST', body: streamOf(3, 100) })))
      expect(upstreams.waiting).toBe(0)

    } finally {
      upstreams.close()
    }
  })

  test('waiting goes back to 0 after a success that took longer than the watch delay', async () => {
    const { upstreams } = upstreamsFor({ OK_URL: backend.url, UPSTREAM_TIMEOUT_MS: '30000' })
    try {
      const pending = upstreams.get('ok')!.call(request('/late'))
      expect(upstreams.waiting).toBe(1)
      const late = await pending
      expect(upstreams.waiting).toBe(0)
      expect(await late.text()).toBe('late but fine')
    } finally {
      upstreams.close()
    }
  })
})
