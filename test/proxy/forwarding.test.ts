import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { rawRequest } from '../helpers/raw-http'

let backend: MockBackend
let prefixed: MockBackend
let gw: RunningGateway
/** Every byte value, invalid UTF-8 included: a text decoder anywhere on the path would corrupt it. */
const binaryPayload = crypto.getRandomValues(new Uint8Array(20_000))

beforeAll(async () => {
  backend = startBackend((request) => {
    const path = new URL(request.url).pathname
    if (path === '/cookies') {
      const headers = new Headers()
      headers.append('set-cookie', 'a=1; Path=/')
      headers.append('set-cookie', 'b=2; HttpOnly')
      return new Response('ok', { headers })
    }
    if (path === '/redirect') return new Response(null, { status: 302, headers: { location: '/elsewhere' } })
    if (path === '/gzip') {
      return new Response(Bun.gzipSync(new TextEncoder().encode('compressed body '.repeat(50))), {
        headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' },
      })
    }
    if (path === '/binary-chunked') {
      const bytes = binaryPayload
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            for (let offset = 0; offset < bytes.length; offset += 5000) {
              controller.enqueue(bytes.slice(offset, offset + 5000))
              await Bun.sleep(1)
            }
            controller.close()
          },
        }),
        { headers: { 'content-type': 'application/octet-stream' } },
      )
    }
    if (path === '/teapot') return Response.json({ backend: 'own error' }, { status: 418 })
    return Response.json({ ok: true })
  })
  prefixed = startBackend()
  gw = await startGateway({ ORCHESTRATOR_URL: backend.url, PREFIXED_URL: `${prefixed.url}/base` })
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
  prefixed.stop()
})

const last = (b: MockBackend) => b.seen[b.seen.length - 1]!

describe('path and query are forwarded byte-exact', () => {
  test('encoded characters, repeated slashes and odd queries are not decoded or re-encoded', async () => {
    const target = '/api/v1/orchestrator/a%2Fb/%41%7e//c;x=1?q=%41&q=a+b&empty=&flag&x=%2F'
    const response = await rawRequest(gw.port, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    expect(response.status).toBe(200)
    expect(last(backend).target).toBe('/a%2Fb/%41%7e//c;x=1?q=%41&q=a+b&empty=&flag&x=%2F')
  })

  test('a base path prefix is prepended', async () => {
    await fetch(`${gw.url}/api/v1/prefixed/a/b?x=1`)
    expect(last(prefixed).target).toBe('/base/a/b?x=1')
  })

  test('/api/v1/<service> alone goes to the base path, keeping the query', async () => {
    await fetch(`${gw.url}/api/v1/prefixed`)
    expect(last(prefixed).target).toBe('/base')
    await fetch(`${gw.url}/api/v1/orchestrator?x=1`)
    expect(last(backend).target).toBe('/?x=1')
  })

  test('malformed percent-encoding is a 400 JSON error and reaches no backend', async () => {
    const before = backend.seen.length
    const response = await rawRequest(gw.port, 'GET /api/v1/orchestrator/a%zz?b=%4 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
    expect(response.status).toBe(400)
    expect(JSON.parse(response.body)).toMatchObject({ error: 'bad_request' })
    expect(backend.seen.length).toBe(before)
  })

  test('a Host that is not an authority (a / or a space in it) gets 400: Bun builds the URL from it, and the path would seem to start elsewhere', async () => {
    const before = prefixed.seen.length
    for (const host of ['a/b', 'a b', 'a\\b', 'a?b', 'user@a']) {
      const response = await rawRequest(gw.port, `GET /zz/api/v1/prefixed/x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
      expect([host, response.status]).toEqual([host, 400])
    }
    expect(prefixed.seen.length).toBe(before)
  })

  test('dot segments are resolved against the gateway path and never climb out of a base path', async () => {
    const cases: [string, string][] = [
      ['/api/v1/prefixed/a/../b', '/base/b'],
      ['/api/v1/prefixed/a/%2e%2E/secret', '/base/secret'],
      ['/api/v1/prefixed/./x', '/base/x'],
    ]
    for (const [path, expected] of cases) {
      const response = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      expect(response.status).toBe(200)
      expect(last(prefixed).target).toBe(expected)
    }
    // Climbing above the service segment leaves the service: here to an unknown one, never to /secret on this backend.
    const before = prefixed.seen.length
    const escaped = await rawRequest(gw.port, 'GET /api/v1/prefixed/../secret HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
    expect(escaped.status).toBe(404)
    expect(JSON.parse(escaped.body).error).toBe('unknown_service')
    expect(prefixed.seen.length).toBe(before)
  })
})

describe('methods', () => {
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    test(`${method} is forwarded with its method`, async () => {
      const response = await fetch(`${gw.url}/api/v1/orchestrator/m`, { method, body: ['POST', 'PUT', 'PATCH'].includes(method) ? 'x' : undefined })
      expect(response.status).toBe(200)
      expect(last(backend).method).toBe(method)
    })
  }
})

describe('headers', () => {
  test('X-Forwarded-For appends the peer to the client value; proto, host and request id are added', async () => {
    await fetch(`${gw.url}/api/v1/orchestrator/h`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'client-id-1', host: 'public.example:8443' } })
    const seen = last(backend).headers
    expect(seen.get('x-forwarded-for')).toBe('203.0.113.7, 127.0.0.1')
    expect(seen.get('x-forwarded-proto')).toBe('http')
    expect(seen.get('x-forwarded-host')).toBe('public.example:8443')
    expect(seen.get('x-request-id')).toBe('client-id-1')
    expect(seen.get('host')).toBe(`127.0.0.1:${backend.port}`)
  })

  /** What a client may claim about itself, its scheme or its path, which Spring, Jetty, Undertow, IIS and Symfony believe. */
  const FORGED: Record<string, string> = {
    forwarded: 'for=203.0.113.66;proto=https;host=admin.example',
    'x-real-ip': '203.0.113.66',
    'x-forwarded-port': '443',
    'x-forwarded-prefix': '/admin',
    'x-original-url': '/admin/delete-everything',
    'x-rewrite-url': '/admin/delete-everything',
  }

  test("a client's Forwarded, X-Real-IP, X-Forwarded-Port/-Prefix, X-Original-URL and X-Rewrite-URL never reach the backend; X-Real-IP is the gateway's", async () => {
    await fetch(`${gw.url}/api/v1/orchestrator/forged`, { headers: FORGED })
    const seen = last(backend).headers
    for (const name of Object.keys(FORGED).filter((n) => n !== 'x-real-ip')) expect([name, seen.get(name)]).toEqual([name, null])
    expect(seen.get('x-real-ip')).toBe('127.0.0.1')
  })

  test('nor under the spellings with _ that CGI, WSGI and Rack backends read as the same header', async () => {
    const names = ['X_Real_IP', 'X_Forwarded_Prefix', 'X-Forwarded_Host', 'X_Forwarded_For', 'X_Forwarded_Proto', 'X_Original_URL', 'X_Request_Id', 'X_Auth_Subject']
    const request = ['GET /api/v1/orchestrator/underscores HTTP/1.1', 'Host: gw', ...names.map((n) => `${n}: forged`), 'X_Custom_Thing: kept', 'Connection: close', '', ''].join('\r\n')
    expect((await rawRequest(gw.port, request)).status).toBe(200)
    const seen = last(backend).headers
    for (const name of names) expect([name, seen.get(name)]).toEqual([name, null])
    for (const [, value] of seen) expect(value).not.toBe('forged')
    // Only lookalikes of the gateway's own headers go; other names with _ are the application's.
    expect(seen.get('x_custom_thing')).toBe('kept')
  })

  test('from a TRUST_PROXY peer they are that proxy\'s word and pass on; X-Real-IP is the client behind it', async () => {
    const trusting = await startGateway({ ORCHESTRATOR_URL: backend.url, TRUST_PROXY: '127.0.0.1' })
    try {
      await fetch(`${trusting.url}/api/v1/orchestrator/via-proxy`, { headers: { ...FORGED, 'x-forwarded-for': '198.51.100.20' } })
      const seen = last(backend).headers
      for (const name of Object.keys(FORGED).filter((n) => n !== 'x-real-ip')) expect([name, seen.get(name)]).toEqual([name, FORGED[name]!])
      expect(seen.get('x-real-ip')).toBe('198.51.100.20')
      expect(seen.get('x-forwarded-for')).toBe('198.51.100.20, 127.0.0.1')
    } finally {
      await trusting.stop()
    }
  })

  test('hop-by-hop request headers and the headers Connection names are dropped', async () => {
    const request = [
      'GET /api/v1/orchestrator/hop HTTP/1.1',
      'Host: gw',
      'Connection: close, X-Secret-Hop, X-Forwarded-For',
      'X-Secret-Hop: 1',
      'X-Forwarded-For: 198.51.100.1',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Trailer: X-T',
      'Proxy-Authorization: Basic Zm9v',
      'X-Kept: yes',
      '',
      '',
    ].join('\r\n')
    const response = await rawRequest(gw.port, request)
    expect(response.status).toBe(200)
    const seen = last(backend).headers
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'trailer', 'proxy-authorization']) expect(seen.has(name)).toBe(false)
    expect(seen.get('x-kept')).toBe('yes')
    // Connection named X-Forwarded-For: the client's value goes, the gateway's own is still added.
    expect(seen.get('x-forwarded-for')).toBe('127.0.0.1')
  })

  test('hop-by-hop response headers and those Connection names are dropped', async () => {
    const raw = net.createServer((socket) => {
      socket.once('data', () => {
        socket.end(
          [
            'HTTP/1.1 200 OK',
            'Content-Length: 2',
            'Connection: X-Backend-Hop',
            'X-Backend-Hop: 1',
            'Keep-Alive: timeout=5',
            'Proxy-Authenticate: Basic',
            'X-Kept: yes',
            '',
            'ok',
          ].join('\r\n'),
        )
      })
    })
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
    const rawGw = await startGateway({ RAW_URL: `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}` })
    try {
      const response = await fetch(`${rawGw.url}/api/v1/raw/x`)
      expect(await response.text()).toBe('ok')
      expect(response.headers.get('x-kept')).toBe('yes')
      for (const name of ['x-backend-hop', 'keep-alive', 'proxy-authenticate']) expect(response.headers.has(name)).toBe(false)
    } finally {
      await rawGw.stop()
      raw.close()
    }
  })

  test('several Set-Cookie headers arrive separately', async () => {
    const response = await fetch(`${gw.url}/api/v1/orchestrator/cookies`)
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly'])
  })

  test('a valid client X-Request-Id is echoed; an invalid or 300-character one is replaced', async () => {
    const kept = await fetch(`${gw.url}/api/v1/orchestrator/id`, { headers: { 'x-request-id': 'abc.DEF:123_-' } })
    expect(kept.headers.get('x-request-id')).toBe('abc.DEF:123_-')
    for (const bad of ['has space', 'x'.repeat(300), 'semi;colon']) {
      const response = await fetch(`${gw.url}/api/v1/orchestrator/id`, { headers: { 'x-request-id': bad } })
      expect(response.status).toBe(200)
      const id = response.headers.get('x-request-id')!
      expect(id).not.toBe(bad)
      expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/)
      expect(last(backend).headers.get('x-request-id')).toBe(id)
    }
  })
})

describe('bodies and encodings', () => {
  test('gzip bodies pass through compressed, with their Content-Encoding', async () => {
    const response = await fetch(`${gw.url}/api/v1/orchestrator/gzip`, { decompress: false } as RequestInit)
    expect(response.headers.get('content-encoding')).toBe('gzip')
    const bytes = new Uint8Array(await response.arrayBuffer())
    expect(bytes[0]).toBe(0x1f)
    expect(bytes[1]).toBe(0x8b)
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe('compressed body '.repeat(50))
  })

  test('a chunked binary body arrives byte-exact (no text decoding on the way)', async () => {
    const response = await fetch(`${gw.url}/api/v1/orchestrator/binary-chunked`)
    expect(response.headers.has('content-length')).toBe(false)
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(binaryPayload)
  })

  test('redirects are returned to the client, not followed', async () => {
    const before = backend.seen.length
    const response = await fetch(`${gw.url}/api/v1/orchestrator/redirect`, { redirect: 'manual' })
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toBe('/elsewhere')
    expect(backend.seen.length).toBe(before + 1)
  })

  test("a backend's own error passes through untouched", async () => {
    const response = await fetch(`${gw.url}/api/v1/orchestrator/teapot`)
    expect(response.status).toBe(418)
    expect(await response.json()).toEqual({ backend: 'own error' })
  })

  test('a 5 MB upload with Content-Length arrives byte-exact', async () => {
    const body = crypto.getRandomValues(new Uint8Array(5 * 1024 * 1024))
    const echo = startBackend(async (request) => {
      const bytes = new Uint8Array(await request.arrayBuffer())
      return Response.json({ length: bytes.length, sha: new Bun.CryptoHasher('sha256').update(bytes).digest('hex') })
    }, { readBody: false })
    const echoGw = await startGateway({ ECHO_URL: echo.url })
    try {
      const response = await fetch(`${echoGw.url}/api/v1/echo/upload`, { method: 'POST', body })
      expect(await response.json()).toEqual({ length: body.length, sha: new Bun.CryptoHasher('sha256').update(body).digest('hex') })
    } finally {
      await echoGw.stop()
      echo.stop()
    }
  })
})
