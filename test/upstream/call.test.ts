/**
 * The upstream module on its own: which target a service's exchange goes to, and how each way
 * of failing is classified (kind, client error, metrics).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import { loadConfig } from '../../src/config'
import { Metrics } from '../../src/ops/metrics'
import { UpstreamFailure } from '../../src/upstream/failures'
import { Upstreams, type UpstreamRequest } from '../../src/upstream/upstream'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'

let backend: MockBackend
let silent: net.Server
let reset: net.Server
let silentPort: number
let resetPort: number
let closed: number

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

beforeAll(async () => {
  backend = startBackend((request) => {
    const path = new URL(request.url).pathname
    if (path.endsWith('/redirect')) return new Response(null, { status: 302, headers: { location: '/elsewhere' } })
    if (path.endsWith('/gzip')) return new Response(gzipSync('compressed body'), { headers: { 'content-encoding': 'gzip', connection: 'x-private', 'x-private': '1', 'keep-alive': 'timeout=5' } })
    return new Response(`${request.method} answered`, { status: 201 })
  })
  silent = net.createServer(() => {})
  reset = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
  silentPort = await listen(silent)
  resetPort = await listen(reset)
  closed = await closedPort()
})

afterAll(() => {
  backend.stop()
  silent.close()
  reset.close()
})

function upstreamsFor(env: Record<string, string>) {
  const metrics = new Metrics()
  const upstreams = new Upstreams(loadConfig(env), metrics)
  return { upstreams, metrics }
}

const get = (target: string, extra: Partial<UpstreamRequest> = {}): UpstreamRequest => ({
  method: 'GET',
  target,
  headers: new Headers(),
  body: null,
  declaredLength: null,
  ...extra,
})

async function failureOf(promise: Promise<Response>): Promise<UpstreamFailure> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(UpstreamFailure)
    return error as UpstreamFailure
  }
  throw new Error('the call succeeded')
}

async function errorCount(metrics: Metrics, service: string, kind: string): Promise<number> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`gateway_upstream_errors_total{service="${service}",kind="${kind}"}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

describe('target choice', () => {
  test('a service is found by its name, with its one instance', () => {
    const { upstreams } = upstreamsFor({ X_URL: 'http://h:9000/base' })
    expect(upstreams.get('x')?.pick()).toMatchObject({ name: 'x', origin: 'http://h:9000', basePath: '/base' })
    expect(upstreams.get('runner')?.url).toBe('http://localhost:8082')
    expect(upstreams.get('nope')).toBeUndefined()
  })

  test('the path on the backend keeps the base path', () => {
    const { upstreams } = upstreamsFor({ X_URL: 'http://h:9000/base/', Y_URL: 'http://h:9000' })
    expect(upstreams.get('x')!.pathOn('/a/b')).toBe('/base/a/b')
    expect(upstreams.get('x')!.pathOn('')).toBe('/base')
    expect(upstreams.get('y')!.pathOn('')).toBe('/')
  })

  test('an exchange reaches base path + path + query byte-exact, with method, headers and body', async () => {
    const { upstreams } = upstreamsFor({ X_URL: `${backend.url}/base` })
    const response = await upstreams.get('x')!.call({
      method: 'PUT',
      target: '/a%2Fb/c?q=%41&b=&b=2',
      headers: new Headers({ 'x-custom': 'yes' }),
      body: 'payload',
      declaredLength: 7,
    })
    expect(response.status).toBe(201)
    expect(await response.text()).toBe('PUT answered')
    const seen = backend.seen.at(-1)!
    expect(seen).toMatchObject({ method: 'PUT', target: '/base/a%2Fb/c?q=%41&b=&b=2', body: 'payload' })
    expect(seen.headers.get('x-custom')).toBe('yes')
  })

  test('the base path alone, with or without a query', async () => {
    const { upstreams } = upstreamsFor({ X_URL: `${backend.url}/base`, Y_URL: backend.url })
    await upstreams.get('x')!.call(get('?only=query'))
    expect(backend.seen.at(-1)!.target).toBe('/base?only=query')
    await upstreams.get('y')!.call(get(''))
    expect(backend.seen.at(-1)!.target).toBe('/')
  })

  test('redirects are returned, encodings kept, and hop-by-hop response headers dropped', async () => {
    const { upstreams } = upstreamsFor({ X_URL: backend.url })
    const redirect = await upstreams.get('x')!.call(get('/redirect'))
    expect(redirect.status).toBe(302)
    expect(redirect.headers.get('location')).toBe('/elsewhere')
    const gzip = await upstreams.get('x')!.call(get('/gzip'))
    expect(gzip.headers.get('content-encoding')).toBe('gzip')
    expect(Buffer.from(await gzip.arrayBuffer())).toEqual(gzipSync('compressed body'))
    expect(gzip.headers.has('x-private')).toBe(false)
    expect(gzip.headers.has('keep-alive')).toBe(false)
    expect(gzip.headers.has('connection')).toBe(false)
  })
})

describe('failure classification', () => {
  test('nothing listening → connect, 502, counted', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: `http://127.0.0.1:${closed}` })
    const failure = await failureOf(upstreams.get('x')!.call(get('/a')))
    expect(failure).toMatchObject({ kind: 'connect', service: 'x' })
    expect(failure.toGatewayError()).toMatchObject({ code: 'bad_gateway', status: 502 })
    expect(await errorCount(metrics, 'x', 'connect')).toBe(1)
  })

  test('connection reset before the response → reset, 502, counted', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: `http://127.0.0.1:${resetPort}` })
    const failure = await failureOf(upstreams.get('x')!.call(get('/a')))
    expect(failure.kind).toBe('reset')
    expect(failure.toGatewayError().status).toBe(502)
    expect(await errorCount(metrics, 'x', 'reset')).toBe(1)
  })

  test('no response headers within UPSTREAM_TIMEOUT_MS → timeout, 504, counted; nothing left waiting', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: `http://127.0.0.1:${silentPort}`, UPSTREAM_TIMEOUT_MS: '200' })
    const started = performance.now()
    const failure = await failureOf(upstreams.get('x')!.call(get('/a')))
    expect(performance.now() - started).toBeGreaterThanOrEqual(190)
    expect(failure.kind).toBe('timeout')
    expect(failure.toGatewayError()).toMatchObject({ code: 'gateway_timeout', status: 504 })
    expect(await errorCount(metrics, 'x', 'timeout')).toBe(1)
    expect(upstreams.waiting).toBe(0)
    upstreams.close()
  })

  test('a streamed body without a declared length past MAX_BODY_BYTES → too_large, 413, not counted', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: backend.url, MAX_BODY_BYTES: '1000' })
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(400))
        controller.close()
      },
    })
    const failure = await failureOf(upstreams.get('x')!.call({ ...get('/upload'), method: 'POST', body, declaredLength: null }))
    expect(failure.kind).toBe('too_large')
    expect(failure.toGatewayError()).toMatchObject({ code: 'payload_too_large', status: 413 })
    expect(await errorCount(metrics, 'x', 'too_large')).toBe(0)
  })

  test('a client that goes away while the backend is silent → client_gone, not counted', async () => {
    const { upstreams, metrics } = upstreamsFor({ X_URL: `http://127.0.0.1:${silentPort}`, UPSTREAM_TIMEOUT_MS: '30000' })
    let seen: UpstreamFailure | undefined
    const front = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(request, server) {
        server.timeout(request, 0)
        try {
          return await upstreams.get('x')!.call({ ...get('/a'), client: request })
        } catch (error) {
          seen = error as UpstreamFailure
          return new Response('failed', { status: 502 })
        }
      },
    })
    try {
      const controller = new AbortController()
      const pending = fetch(`http://127.0.0.1:${front.port}/`, { signal: controller.signal }).catch(() => 'aborted')
      await Bun.sleep(50)
      controller.abort()
      expect(await pending).toBe('aborted')
      for (let i = 0; i < 60 && seen === undefined; i++) await Bun.sleep(50)
      expect(seen?.kind).toBe('client_gone')
      expect(await errorCount(metrics, 'x', 'client_gone')).toBe(0)
      expect(upstreams.waiting).toBe(0)
    } finally {
      front.stop(true)
      upstreams.close()
    }
  })
})
