/**
 * WebSocket proxying (README, "WebSocket proxying") against a real `Bun.serve` WebSocket
 * backend: echo, subprotocol choice, a server-initiated close with 4001, a refusal with 403;
 * admission (rate limit, authentication, origins); a client that never reads; shutdown.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import net from 'node:net'
import { closedPort } from '../helpers/backend'
import { type FaultyBackend, startRawWebSocketBackend } from '../helpers/faulty-backends'
import { type RunningGateway, openWebSocketSessions, startGateway } from '../helpers/gateway'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'
import { waitFor } from '../helpers/wait'

interface Seen {
  headers: Headers
  target: string
}

let backend: Server<{ path: string }>
const seen: Seen[] = []
/** Close codes the backend saw, by path. */
const backendCloses: { path: string; code: number; reason: string }[] = []
/** Accepts every upgrade without choosing a subprotocol. */
let chooser: FaultyBackend
let gw: RunningGateway

beforeAll(async () => {
  backend = Bun.serve<{ path: string }>({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    fetch(request, server) {
      const url = new URL(request.url)
      seen.push({ headers: request.headers, target: url.pathname + url.search })
      if (url.pathname.endsWith('/refuse')) return new Response('not you', { status: 403 })
      const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim()).filter(Boolean)
      // Chooses the last one it knows; `nochoice` accepts without choosing.
      const chosen = url.pathname.endsWith('/nochoice') ? undefined : offered.filter((p) => p.startsWith('chat')).at(-1)
      const headers: Record<string, string> = chosen ? { 'sec-websocket-protocol': chosen } : {}
      return server.upgrade(request, { data: { path: url.pathname }, headers }) ? undefined : new Response('upgrade failed', { status: 400 })
    },
    websocket: {
      idleTimeout: 0,
      // Room for the flood below: the backend itself must not drop what it sends.
      backpressureLimit: 256 * 1024 * 1024,
      open(ws) {
        if (ws.data.path.endsWith('/bye')) ws.close(4001, 'backend says bye')
        if (ws.data.path.endsWith('/flood')) {
          // 32 MiB toward a client that does not read: more than every kernel buffer on the way holds.
          const chunk = 'x'.repeat(64 * 1024)
          for (let i = 0; i < 512; i++) ws.send(chunk)
        }
      },
      close(ws, code, reason) {
        backendCloses.push({ path: ws.data.path, code, reason })
      },
      message(ws, message) {
        if (message === 'close-me') ws.close(4002, 'as you wish')
        else ws.send(message)
      },
    },
  })
  gw = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, RATE_LIMIT: '0' })
  chooser = await startRawWebSocketBackend()
})

afterAll(async () => {
  await gw.stop()
  backend.stop(true)
  chooser.stop()
})

const wsUrl = (base: string, path: string) => `${base.replace('http', 'ws')}/api/v1/ws${path}`

/** Opens a client WebSocket; resolves once open, rejects on error or close first. */
function connect(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<WebSocket> {
  const socket = new (WebSocket as unknown as new (url: string, o: object) => WebSocket)(url, { protocols: options.protocols ?? [], headers: options.headers ?? {} })
  socket.binaryType = 'arraybuffer'
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(socket)
    socket.onerror = (event) => reject(new Error((event as ErrorEvent).message))
  })
}

function nextMessage(socket: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve) => socket.addEventListener('message', (event) => resolve(event.data), { once: true }))
}

function closed(socket: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => socket.addEventListener('close', (event) => resolve({ code: event.code, reason: event.reason }), { once: true }))
}

/** The raw answer to an upgrade request: status line and headers, and the JSON body when not 101. */
async function rawUpgrade(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string; body: string }> {
  const url = new URL(base)
  let received = ''
  const done = Promise.withResolvers<void>()
  const socket = await Bun.connect({
    hostname: url.hostname,
    port: Number(url.port),
    socket: {
      data(_s, chunk) {
        received += chunk.toString('latin1')
        if (received.includes('\r\n\r\n') && (received.startsWith('HTTP/1.1 101') || received.includes('}'))) done.resolve()
      },
      close: () => done.resolve(),
    },
  })
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  socket.write(`GET /api/v1/ws${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`)
  await Promise.race([done.promise, Bun.sleep(3_000)])
  socket.end()
  const [head, body = ''] = received.split('\r\n\r\n')
  return { status: Number(head!.split(' ')[1]), head: head!, body }
}

describe('relaying', () => {
  test('text and binary messages pass both ways unchanged and in order', async () => {
    const socket = await connect(wsUrl(gw.url, '/echo'))
    const received: (string | ArrayBuffer)[] = []
    socket.onmessage = (event) => received.push(event.data)
    const binary = new Uint8Array([0, 1, 2, 250, 255])
    for (let i = 0; i < 50; i++) socket.send(i % 5 === 0 ? binary : `message ${i}`)
    expect(await waitFor(() => received.length === 50)).toBe(true)
    received.forEach((message, i) => {
      if (i % 5 === 0) expect(new Uint8Array(message as ArrayBuffer)).toEqual(binary)
      else expect(message).toBe(`message ${i}`)
    })
    socket.close(1000, 'done')
  })

  test("the backend's subprotocol choice comes back in the 101, which carries X-Request-Id", async () => {
    const socket = await connect(wsUrl(gw.url, '/echo'), { protocols: ['other', 'chat.v1', 'chat.v2'] })
    expect(socket.protocol).toBe('chat.v2')
    socket.close()
    const raw = await rawUpgrade(gw.url, '/echo', { 'Sec-WebSocket-Protocol': 'other, chat.v1' })
    expect(raw.status).toBe(101)
    expect(raw.head.toLowerCase()).toContain('sec-websocket-protocol: chat.v1')
    expect(raw.head.toLowerCase()).not.toContain('other')
    expect(raw.head.toLowerCase()).toMatch(/x-request-id: \S+/)
  })

  test('a backend that chooses none of the offered subprotocols gives 502 and no upgrade', async () => {
    const picky = await startGateway({ WS_URL: chooser.url, RATE_LIMIT: '0' })
    try {
      const raw = await rawUpgrade(picky.url, '/any', { 'Sec-WebSocket-Protocol': 'chat.v1' })
      expect(raw.status).toBe(502)
      expect(JSON.parse(raw.body).error).toBe('bad_gateway')
    } finally {
      await picky.stop()
    }
  })

  test('Origin, cookies, X-Forwarded-* and X-Request-Id reach the backend; Host and the client handshake do not', async () => {
    const socket = await connect(wsUrl(gw.url, '/echo?room=7'), { headers: { origin: 'https://app.example.com', cookie: 'session=abc', 'x-request-id': 'ws-req-1' } })
    const request = seen.at(-1)!
    expect(request.target).toBe('/api/v1/ws/echo?room=7'.replace('/api/v1/ws', ''))
    expect(request.headers.get('origin')).toBe('https://app.example.com')
    expect(request.headers.get('cookie')).toBe('session=abc')
    expect(request.headers.get('x-request-id')).toBe('ws-req-1')
    expect(request.headers.get('x-forwarded-for')).toBe('127.0.0.1')
    expect(request.headers.get('x-forwarded-proto')).toBe('http')
    expect(request.headers.get('host')).toBe(`127.0.0.1:${backend.port}`)
    socket.close()
  })

  test('a close from the backend (4001) reaches the client with its code and reason', async () => {
    const socket = await connect(wsUrl(gw.url, '/bye'))
    expect(await closed(socket)).toEqual({ code: 4001, reason: 'backend says bye' })
  })

  test('a close from the client reaches the backend with its code and reason', async () => {
    const socket = await connect(wsUrl(gw.url, '/client-closes'))
    socket.send('hello')
    await nextMessage(socket)
    socket.close(4123, 'the client is done')
    expect(await waitFor(() => backendCloses.some((c) => c.path.endsWith('/client-closes')))).toBe(true)
    expect(backendCloses.find((c) => c.path.endsWith('/client-closes'))).toMatchObject({ code: 4123, reason: 'the client is done' })
  })

  test("the backend's own answer to a message can be a close (4002), and it reaches the client", async () => {
    const socket = await connect(wsUrl(gw.url, '/echo'))
    const ended = closed(socket)
    socket.send('close-me')
    expect(await ended).toEqual({ code: 4002, reason: 'as you wish' })
    expect(await waitFor(async () => (await openWebSocketSessions(gw.gateway)) === 0)).toBe(true)
  })

  test('a refusal (403) or an unreachable backend gives 502 bad_gateway (JSON), and no upgrade', async () => {
    const refused = await rawUpgrade(gw.url, '/refuse')
    expect(refused.status).toBe(502)
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'bad_gateway' })
    const down = await startGateway({ WS_URL: `http://127.0.0.1:${await closedPort()}`, RATE_LIMIT: '0' })
    try {
      expect((await rawUpgrade(down.url, '/echo')).status).toBe(502)
    } finally {
      await down.stop()
    }
  })
})

describe('sessions end well', () => {
  test('a client that vanishes without a close closes the backend side with 1001', async () => {
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.on('error', () => {})
    const upgraded = Promise.withResolvers<void>()
    socket.once('data', () => upgraded.resolve())
    socket.write(`GET /api/v1/ws/vanish HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    await upgraded.promise
    expect(await waitFor(async () => (await openWebSocketSessions(gw.gateway)) > 0)).toBe(true)
    socket.destroy()
    expect(await waitFor(() => backendCloses.some((c) => c.path.endsWith('/vanish')))).toBe(true)
    expect(backendCloses.find((c) => c.path.endsWith('/vanish'))!.code).toBe(1001)
  })

  test('a client that never reads is closed once over 1 MiB waits for it (1008), and its backend session too', async () => {
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.on('error', () => {})
    let head = ''
    socket.once('data', (chunk) => {
      head = chunk.toString('latin1').slice(0, 12)
      // From now on nothing is read: the kernel buffers fill, then the gateway's backlog grows.
      socket.pause()
    })
    socket.write(`GET /api/v1/ws/flood HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    expect(await waitFor(() => gw.logs.some((l) => l.msg === 'WebSocket session closed' && l.code === 1008), 15_000)).toBe(true)
    expect(head).toBe('HTTP/1.1 101')
    expect(await waitFor(() => backendCloses.some((c) => c.path.endsWith('/flood')))).toBe(true)
    socket.destroy()
  }, 20_000)

  test('shutdown closes open sessions at once with 1001 on both sides, long before the drain ends', async () => {
    const local = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, RATE_LIMIT: '0' })
    const socket = await connect(wsUrl(local.url, '/shutdown'))
    const ended = closed(socket)
    const started = performance.now()
    const stopping = local.gateway.shutdown(5_000)
    expect(await ended).toEqual({ code: 1001, reason: 'the gateway is shutting down' })
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(await waitFor(() => backendCloses.some((c) => c.path.endsWith('/shutdown')))).toBe(true)
    expect(backendCloses.find((c) => c.path.endsWith('/shutdown'))!.code).toBe(1001)
    await stopping
  })

  test('an upgrade still waiting for its backend when shutdown begins is refused (503), and shutdown does not wait for it', async () => {
    const slow = await startRawWebSocketBackend({ acceptAfterMs: 300 })
    const local = await startGateway({ WS_URL: slow.url, RATE_LIMIT: '0' })
    try {
      const upgrading = rawUpgrade(local.url, '/late')
      await Bun.sleep(100)
      const started = performance.now()
      const drained = local.gateway.shutdown(5_000)
      const answer = await upgrading
      expect(answer.status).toBe(503)
      await drained
      expect(performance.now() - started).toBeLessThan(2_000)
    } finally {
      slow.stop()
    }
  })

  test('a backend that never answers the close handshake has its socket cut after 5 s', async () => {
    let backendSocketClosed = false
    // Reads and ignores everything after the upgrade, the close frame included.
    const deaf = await startRawWebSocketBackend({ afterAccept: (socket) => socket.on('close', () => (backendSocketClosed = true)) })
    const local = await startGateway({ WS_URL: deaf.url, RATE_LIMIT: '0' })
    try {
      const socket = await connect(wsUrl(local.url, '/deaf'))
      socket.close(1000, 'bye')
      await Bun.sleep(1_000)
      expect(backendSocketClosed).toBe(false)
      expect(await waitFor(() => backendSocketClosed, 7_000)).toBe(true)
    } finally {
      await local.stop()
      deaf.stop()
    }
  }, 15_000)

  test('sessions and messages are in /metrics', async () => {
    const socket = await connect(wsUrl(gw.url, '/echo'))
    socket.send('counted')
    await nextMessage(socket)
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(Number(/^gateway_websocket_sessions (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1)
    expect(Number(/^gateway_websocket_messages_total\{direction="to_client"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0)
    expect(Number(/^gateway_websocket_messages_total\{direction="to_backend"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0)
    socket.close()
  })
})

describe('admission', () => {
  test('a handshake the gateway could not complete is refused with 400 before any backend is contacted', async () => {
    const before = seen.length
    for (const protocol of ['a b', 'chat, chat', 'chat,,other']) {
      const raw = await rawUpgrade(gw.url, '/echo', { 'Sec-WebSocket-Protocol': protocol })
      expect([protocol, raw.status, JSON.parse(raw.body).error]).toEqual([protocol, 400, 'bad_request'])
    }
    const url = new URL(gw.url)
    const noKey = await fetch(`${gw.url}/api/v1/ws/echo`, { headers: { upgrade: 'websocket', connection: 'Upgrade', host: url.host } })
    expect(noKey.status).toBe(400)
    expect(seen.length).toBe(before)
  })

  test('with CORS_ORIGINS, an upgrade from an unlisted Origin gets 403; a listed one, or none (not a browser), is let through', async () => {
    const listed = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, RATE_LIMIT: '0', CORS_ORIGINS: 'https://app.example.com' })
    try {
      const hijack = await rawUpgrade(listed.url, '/echo', { Origin: 'https://evil.example' })
      expect(hijack.status).toBe(403)
      expect(JSON.parse(hijack.body).error).toBe('forbidden')
      expect((await rawUpgrade(listed.url, '/echo', { Origin: 'https://app.example.com' })).status).toBe(101)
      expect((await rawUpgrade(listed.url, '/echo')).status).toBe(101)
    } finally {
      await listed.stop()
    }
  })

  test('cross-site WebSocket hijacking: a cookie token on an upgrade from another origin gets 403, even with CORS_ORIGINS=*, and no backend socket is opened', async () => {
    const guarded = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, AUTH_JWT_SECRET: TEST_SECRET, RATE_LIMIT: '0' })
    try {
      const token = await hs256Token(TEST_SECRET, { claims: { sub: 'alice' } })
      const cookie = `access_token=${token}`
      const before = seen.length
      // A real browser-like client: another site's page opening a socket, the browser adding alice's cookie.
      await expect(connect(wsUrl(guarded.url, '/echo'), { headers: { origin: 'https://evil.example', cookie } })).rejects.toBeDefined()
      const hijack = await rawUpgrade(guarded.url, '/echo', { Origin: 'https://evil.example', Cookie: cookie })
      expect(hijack.status).toBe(403)
      expect(JSON.parse(hijack.body).error).toBe('forbidden')
      expect(seen.length).toBe(before)
      // The gateway's own origin, or no Origin at all (not a browser page): accepted.
      for (const headers of [{ origin: guarded.url, cookie }, { cookie }] as Record<string, string>[]) {
        const socket = await connect(wsUrl(guarded.url, '/echo'), { headers })
        expect(seen.at(-1)!.headers.get('x-auth-subject')).toBe('alice')
        socket.close()
      }
      // A token in Authorization is not ambient: a page cannot make the browser send it, so any origin may.
      const bearer = await connect(wsUrl(guarded.url, '/echo'), { headers: { origin: 'https://evil.example', authorization: `Bearer ${token}` } })
      bearer.close()
    } finally {
      await guarded.stop()
    }
  })

  test('with CORS_ORIGINS listing an origin, a cookie token on an upgrade from it is accepted', async () => {
    const listed = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, AUTH_JWT_SECRET: TEST_SECRET, RATE_LIMIT: '0', CORS_ORIGINS: 'https://app.example.com' })
    try {
      const cookie = `access_token=${await hs256Token(TEST_SECRET, { claims: { sub: 'alice' } })}`
      expect((await rawUpgrade(listed.url, '/echo', { Origin: 'https://app.example.com', Cookie: cookie })).status).toBe(101)
      expect((await rawUpgrade(listed.url, '/echo', { Origin: 'https://evil.example', Cookie: cookie })).status).toBe(403)
    } finally {
      await listed.stop()
    }
  })

  test('the rate limit and authentication apply to the upgrade; the backend gets X-Auth-Subject, not the query token', async () => {
    const guarded = await startGateway({ WS_URL: `http://127.0.0.1:${backend.port}`, AUTH_JWT_SECRET: TEST_SECRET, RATE_LIMIT: '60', RATE_LIMIT_BURST: '3' })
    try {
      expect((await rawUpgrade(guarded.url, '/echo')).status).toBe(401)
      const token = await hs256Token(TEST_SECRET, { claims: { sub: 'ws-user' } })
      const socket = await connect(`${wsUrl(guarded.url, '/echo')}?access_token=${token}&room=1`)
      expect(seen.at(-1)!.headers.get('x-auth-subject')).toBe('ws-user')
      expect(seen.at(-1)!.target).toBe('/echo?room=1')
      socket.close()
      expect((await rawUpgrade(guarded.url, '/echo')).status).toBe(401)
      expect((await rawUpgrade(guarded.url, '/echo')).status).toBe(429)
    } finally {
      await guarded.stop()
    }
  })
})

describe('instances', () => {
  test('an upgrade is balanced and respects ejection; a backend socket that could not be opened is tried on another instance', async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`
    const spread = await startGateway({ WS_URL: `${closed},http://127.0.0.1:${backend.port}`, RATE_LIMIT: '0', CIRCUIT_FAILURES: '2' })
    try {
      for (let i = 0; i < 20; i++) {
        const socket = await connect(wsUrl(spread.url, '/echo'))
        socket.send(`hi ${i}`)
        expect(await nextMessage(socket)).toBe(`hi ${i}`)
        socket.close()
      }
      const lines = spread.logs.filter((l) => l.msg === 'Proxied request' && l.status === 101)
      expect(lines).toHaveLength(20)
      expect(lines.some((l) => l.attempts === 2)).toBe(true)
      // Once ejected (after 2 failed opens), the closed instance is not tried again.
      expect(lines.filter((l) => l.attempts === 2)).toHaveLength(2)
      expect(spread.logs.filter((l) => l.msg === 'Upstream instance ejected after consecutive failures')).toHaveLength(1)
    } finally {
      await spread.stop()
    }
  })

  test('a backend that vanishes without a close closes the client with 1011', async () => {
    // Accepts the upgrade, then its socket dies: no close frame.
    const doomed = await startRawWebSocketBackend({ afterAccept: (socket) => setTimeout(() => socket.destroy(), 100) })
    const local = await startGateway({ WS_URL: doomed.url, RATE_LIMIT: '0' })
    try {
      const socket = await connect(wsUrl(local.url, '/any'))
      expect((await closed(socket)).code).toBe(1011)
    } finally {
      await local.stop()
      doomed.stop()
    }
  })
})
