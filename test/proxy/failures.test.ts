import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { rawRequest } from '../helpers/raw-http'

let backend: MockBackend
let silentServer: net.Server
let resetServer: net.Server
let gw: RunningGateway
const upstreamAborts: string[] = []

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

beforeAll(async () => {
  backend = startBackend(async (request, server) => {
    server.timeout(request, 0)
    const path = new URL(request.url).pathname
    if (path === '/slow-headers') {
      request.signal.addEventListener('abort', () => upstreamAborts.push('before-headers'))
      await Bun.sleep(5_000)
      return new Response('late')
    }
    if (path === '/endless') {
      let timer: Timer
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          timer = setInterval(() => controller.enqueue(new TextEncoder().encode('tick\n')), 20)
        },
        cancel() {
          clearInterval(timer)
          upstreamAborts.push('during-body')
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/plain' } })
    }
    return Response.json({ ok: true })
  })
  silentServer = net.createServer(() => {}) // accepts, never answers
  resetServer = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
  gw = await startGateway({
    OK_URL: backend.url,
    SILENT_URL: `http://127.0.0.1:${await listen(silentServer)}`,
    RESET_URL: `http://127.0.0.1:${await listen(resetServer)}`,
    CLOSED_URL: `http://127.0.0.1:${await closedPort()}`,
    UPSTREAM_TIMEOUT_MS: '300',
    MAX_BODY_BYTES: '1000',
  })
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
  silentServer.close()
  resetServer.close()
})

async function expectJsonError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toBe('application/json')
  const body = await response.json()
  expect(body).toEqual({ error: code, message: expect.any(String), request_id: response.headers.get('x-request-id') })
}

function metricValue(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(line))
  return found ? Number(found.slice(line.length).trim()) : 0
}

describe('errors are the documented JSON', () => {
  test('unknown service → 404 unknown_service', async () => {
    await expectJsonError(await fetch(`${gw.url}/api/v1/nosuch/x`), 404, 'unknown_service')
  })

  test('an unknown route outside the proxy → 404 not_found', async () => {
    await expectJsonError(await fetch(`${gw.url}/nothing/here`), 404, 'not_found')
  })

  test('a backend whose port is closed → 502 bad_gateway, counted as a connect error', async () => {
    await expectJsonError(await fetch(`${gw.url}/api/v1/closed/x`), 502, 'bad_gateway')
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metricValue(metrics, 'gateway_upstream_errors_total{service="closed",kind="connect"}')).toBe(1)
  })

  test('a backend that resets the connection → 502 bad_gateway, counted as a reset', async () => {
    await expectJsonError(await fetch(`${gw.url}/api/v1/reset/x`), 502, 'bad_gateway')
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metricValue(metrics, 'gateway_upstream_errors_total{service="reset",kind="reset"}')).toBe(1)
  })

  test('a backend that never answers → 504 gateway_timeout after UPSTREAM_TIMEOUT_MS', async () => {
    const started = performance.now()
    await expectJsonError(await fetch(`${gw.url}/api/v1/silent/x`), 504, 'gateway_timeout')
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metricValue(metrics, 'gateway_upstream_errors_total{service="silent",kind="timeout"}')).toBe(1)
  })

  test('Content-Length over MAX_BODY_BYTES → 413 without contacting the backend', async () => {
    const before = backend.seen.length
    await expectJsonError(await fetch(`${gw.url}/api/v1/ok/upload`, { method: 'POST', body: 'x'.repeat(1001) }), 413, 'payload_too_large')
    // Announced only: the gateway answers from the header alone.
    const announced = await rawRequest(gw.port, 'POST /api/v1/ok/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 999999999\r\n\r\n')
    expect(announced.status).toBe(413)
    expect(JSON.parse(announced.body).error).toBe('payload_too_large')
    expect(backend.seen.length).toBe(before)
  })

  test('a chunked body that grows past MAX_BODY_BYTES → 413', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new Uint8Array(400))
        controller.close()
      },
    })
    await expectJsonError(await fetch(`${gw.url}/api/v1/ok/upload`, { method: 'POST', body }), 413, 'payload_too_large')
  })

  test('a body exactly at MAX_BODY_BYTES is accepted', async () => {
    const response = await fetch(`${gw.url}/api/v1/ok/upload`, { method: 'POST', body: 'x'.repeat(1000) })
    expect(response.status).toBe(200)
  })

  test('a garbage Content-Length is refused with 400 by the HTTP parser, the backend is not contacted, and the gateway keeps serving', async () => {
    const before = backend.seen.length
    for (const value of ['abc', '-1', '12, 13']) {
      const response = await rawRequest(gw.port, `POST /api/v1/ok/x HTTP/1.1\r\nHost: gw\r\nContent-Length: ${value}\r\n\r\nhello`)
      expect(response.status).toBe(400)
      expect(response.closed).toBe(true)
    }
    expect(backend.seen.length).toBe(before)
    expect((await fetch(`${gw.url}/api/v1/ok/x`)).status).toBe(200)
  })
})

describe('a client that goes away aborts its upstream request', () => {
  test('while waiting for response headers', async () => {
    const socket = net.connect(gw.port, '127.0.0.1')
    socket.write('GET /api/v1/ok/slow-headers HTTP/1.1\r\nHost: gw\r\n\r\n')
    await Bun.sleep(100)
    socket.destroy()
    for (let i = 0; i < 50 && !upstreamAborts.includes('before-headers'); i++) await Bun.sleep(20)
    expect(upstreamAborts).toContain('before-headers')
  })

  test('while the response body streams', async () => {
    const controller = new AbortController()
    const response = await fetch(`${gw.url}/api/v1/ok/endless`, { signal: controller.signal })
    const reader = response.body!.getReader()
    await reader.read()
    controller.abort()
    for (let i = 0; i < 50 && !upstreamAborts.includes('during-body'); i++) await Bun.sleep(20)
    expect(upstreamAborts).toContain('during-body')
  })
})

describe('connections to backends are reused', () => {
  test('sequential requests arrive on one keep-alive connection', async () => {
    const before = backend.seen.length
    for (let i = 0; i < 10; i++) expect((await fetch(`${gw.url}/api/v1/ok/ka`)).status).toBe(200)
    const ports = new Set(backend.seen.slice(before).map((s) => s.peerPort))
    expect(ports.size).toBe(1)
  })
})
