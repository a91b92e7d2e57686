/**
 * Route matching of the policy file (SPEC §12): an authorization rule that a spelling bypasses is
 * the worst bug policies can ship. Every service has its own recording backend, so "never
 * forwarded" is counted, not assumed, and the path a backend receives is compared byte for byte.
 *
 * The policy is written so that a bypass shows: `billing` is `auth: off` at service level, and
 * only its `/admin` route asks for a token holding `roles: admin`. A spelling that the gateway
 * fails to match as `/admin`, but that a backend reads as `/admin`, gets through without a token.
 *
 * Bun resolves `.` and `..` segments (raw, `%2e`, `.%2e`, `%2E%2E`) and turns `\` into `/` before
 * any gateway code sees the URL; for those spellings the tests accept either outcome that is
 * safe (Bun's resolved path matched as it is forwarded, or a 400) and never a forward that skips
 * the `/admin` rule. Requests whose path `fetch` would normalize go through `rawRequest`.
 *
 * The gateway is built here as `src/main.ts` builds it (settings, then the policy file's
 * policies, then the gateway): `test/helpers/gateway.ts` passes no policies to `createGateway`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createGateway, type Gateway } from '../../src/app'
import { policiesOfText } from '../../src/config/policy-file'
import { loadConfig } from '../../src/config/settings'
import { createLogger } from '../../src/ops/log'
import { type MockBackend, type SeenRequest, startBackend } from '../helpers/backend'
import { type RawResponse, rawRequest } from '../helpers/raw-http'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'

/** Backends that sleep on any path holding `/sleep`, longer than the short route timeouts below. */
const SLEEP_MS = 700
const sleepy = async (request: Request) => {
  if (new URL(request.url).pathname.includes('/sleep')) await Bun.sleep(SLEEP_MS)
  return Response.json({ ok: true })
}

let billing: MockBackend
let folded: MockBackend
let plain: MockBackend
let optional: MockBackend
let claims: MockBackend
let headers: MockBackend
let limits: MockBackend
let gateway: Gateway
let port: number

/** Tokens: roles admin, another role, auditor; one signed with another secret. */
let admin: string
let user: string
let auditor: string
let forged: string

function policyFile(): string {
  return `
services:
  billing:
    url: ${billing.url}
    auth: off
    routes:
      - path: /admin
        auth: required
        require: { roles: admin }
      - path: /admin/reports
        auth: required
        require: { roles: auditor }
      - path: /public
        auth: off
      - path: /readonly
        methods: [GET]
      - path: /café
        auth: required
        require: { roles: admin }
      - path: /v1/items:batch
        auth: required
        require: { roles: admin }
  folded:
    url: ${folded.url}
    case_sensitive: false
    auth: off
    routes:
      - path: /admin
        auth: required
        require: { roles: admin }
  plain:
    url: ${plain.url}
    auth: off
  optional:
    url: ${optional.url}
    auth: optional
    routes:
      - path: /need
        require: { roles: admin }
      - path: /off
        auth: off
  claims:
    url: ${claims.url}
    auth: required
    routes:
      - path: /equals
        require: { tenant: acme }
      - path: /member
        require: { roles: editor }
      - path: /scope
        require: { scope: write }
      - path: /any
        require: { roles: [editor, publisher] }
      - path: /all
        require: { tenant: acme, roles: editor, email_verified: true }
  headers:
    url: ${headers.url}
    auth: off
    request_headers: { set: { X-Api-Version: "2" }, remove: [X-Debug] }
    response_headers: { set: { X-Policy: headers, Cache-Control: no-store }, remove: [X-Backend-Internal] }
    routes:
      - path: /route
        response_headers: { set: { X-Route: route } }
      - path: /secure
        auth: required
      - path: /getonly
        methods: [GET]
      - path: /small
        max_body_bytes: 4
      - path: /slow
        timeout_ms: 200
  limits:
    url: ${limits.url}
    auth: off
    timeout_ms: 5000
    routes:
      - path: /slow
        timeout_ms: 250
        retries: 0
      - path: /small
        max_body_bytes: 10
`
}

beforeAll(async () => {
  billing = startBackend()
  folded = startBackend()
  plain = startBackend()
  optional = startBackend()
  claims = startBackend()
  headers = startBackend(async (request) => {
    await sleepy(request)
    return new Response('{"ok":true}', {
      headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=60', 'x-backend-internal': 'db-7', 'x-kept': 'yes' },
    })
  })
  limits = startBackend(sleepy)
  const config = loadConfig({ HOST: '127.0.0.1', LOG_LEVEL: 'silent', RATE_LIMIT: '0', AUTH_JWT_SECRET: TEST_SECRET })
  const { policies } = policiesOfText(config, 'policies.yaml', policyFile())
  gateway = createGateway({ config, logger: createLogger(config.logLevel, { write() {} }), policies })
  port = gateway.listen(0).port!
  admin = await hs256Token(TEST_SECRET, { claims: { roles: ['admin'] } })
  user = await hs256Token(TEST_SECRET, { claims: { roles: ['user'] } })
  auditor = await hs256Token(TEST_SECRET, { claims: { sub: 'audrey', roles: ['auditor'] } })
  forged = await hs256Token('another-secret-of-32-bytes-or-more!!', { claims: { roles: ['admin'] } })
})

afterAll(async () => {
  await gateway.shutdown(100)
  for (const backend of [billing, folded, plain, optional, claims, headers, limits]) backend.stop()
})

interface Sent extends RawResponse {
  /** What reached the backend because of this request (nothing, or one request). */
  reached: SeenRequest[]
}

/**
 * One request on its own connection, its request target sent as written (nothing normalized by
 * a client), and what the backend saw of it.
 */
async function send(
  backend: MockBackend,
  target: string,
  { token, method = 'GET', headers: extra = {}, body }: { token?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Sent> {
  const before = backend.seen.length
  let head = `${method} ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n`
  if (token !== undefined) head += `Authorization: Bearer ${token}\r\n`
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`
  if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`
  const response = await rawRequest(port, `${head}\r\n${body ?? ''}`)
  return { ...response, reached: backend.seen.slice(before) }
}

const header = (response: RawResponse, name: string) => response.headers.get(name)?.join(', ') ?? null
const errorOf = (response: RawResponse) => (JSON.parse(response.body) as { error: string }).error

/** 401 without a token, 403 with a token of another role, neither reaching the backend; 200 with `roles: admin`, forwarded byte-exact. */
async function expectAdminOnly(backend: MockBackend, target: string, forwarded: string) {
  const anonymous = await send(backend, target)
  expect(anonymous.status).toBe(401)
  expect(errorOf(anonymous)).toBe('unauthorized')
  expect(anonymous.reached).toEqual([])
  const wrongRole = await send(backend, target, { token: user })
  expect(wrongRole.status).toBe(403)
  expect(errorOf(wrongRole)).toBe('forbidden')
  expect(wrongRole.reached).toEqual([])
  const granted = await send(backend, target, { token: admin })
  expect(granted.status).toBe(200)
  expect(granted.reached.map((seen) => seen.target)).toEqual([forwarded])
  expect(granted.reached[0]!.headers.get('x-auth-subject')).toBe('alice')
}

/** The service policy of `billing` (auth off): 200 without a token, forwarded byte-exact. */
async function expectServicePolicy(backend: MockBackend, target: string, forwarded: string) {
  const anonymous = await send(backend, target)
  expect(anonymous.status).toBe(200)
  expect(anonymous.reached.map((seen) => seen.target)).toEqual([forwarded])
}

/** 400 `bad_request`, with or without a token that would pass `/admin`, and nothing forwarded. */
async function expectRefused(backend: MockBackend, target: string) {
  for (const token of [undefined, admin]) {
    const response = await send(backend, target, { token })
    expect(response.status).toBe(400)
    expect(errorOf(response)).toBe('bad_request')
    expect(response.reached).toEqual([])
  }
}

describe('routes match whole segments of the path below the service', () => {
  test.each([
    ['/api/v1/billing/admin', '/admin'],
    ['/api/v1/billing/admin/x', '/admin/x'],
    ['/api/v1/billing/admin/', '/admin/'],
    ['/api/v1/billing/admin?x', '/admin?x'],
    ['/api/v1/billing/admin/x/y?z=1', '/admin/x/y?z=1'],
  ])('%s is under /admin: 401 without a token, 403 with another role, 200 with roles admin', async (target, forwarded) => {
    await expectAdminOnly(billing, target, forwarded)
  })

  test('/administrator is not under /admin (whole segments): it gets the service policy, no token needed', async () => {
    await expectServicePolicy(billing, '/api/v1/billing/administrator', '/administrator')
    await expectServicePolicy(billing, '/api/v1/billing/admins/x', '/admins/x')
  })

  test('a path under no route, and the service root, get the service policy', async () => {
    await expectServicePolicy(billing, '/api/v1/billing/invoices/1', '/invoices/1')
    await expectServicePolicy(billing, '/api/v1/billing', '/')
    await expectServicePolicy(billing, '/api/v1/billing/x/admin', '/x/admin')
  })

  test('a token holding roles admin is not needed on /public (auth off), and an invalid one is not even read', async () => {
    expect((await send(billing, '/api/v1/billing/public/x')).status).toBe(200)
    expect((await send(billing, '/api/v1/billing/public/x', { token: forged })).status).toBe(200)
  })
})

describe('percent-encoded unreserved characters are matched decoded, and forwarded as sent', () => {
  test.each([
    ['/%61dmin', '/%61dmin'],
    ['/adm%69n', '/adm%69n'],
    ['/ad%6Din/x', '/ad%6Din/x'],
    ['/%61%64%6d%69%6e?q=%61', '/%61%64%6d%69%6e?q=%61'],
  ])('%s is /admin: it needs roles admin, and the backend receives %s byte-exact', async (rest, forwarded) => {
    await expectAdminOnly(billing, `/api/v1/billing${rest}`, forwarded)
  })

  test('a route written raw outside ASCII (/café) covers the request as clients send it (/caf%C3%A9) and needs its role; /café is forwarded as sent', async () => {
    const anonymous = await send(billing, '/api/v1/billing/caf%C3%A9/menu')
    expect(anonymous.status).toBe(401)
    expect(anonymous.reached).toEqual([])
    const admitted = await send(billing, '/api/v1/billing/caf%c3%a9/menu', { token: admin })
    expect(admitted.status).toBe(200)
    expect(admitted.reached.map((seen) => seen.target)).toEqual(['/caf%c3%a9/menu'])
  })

  test('a route with a reserved character (/v1/items:batch) needs its role raw, and its encoded spelling (%3A, which Go, Spring, Django and Rails decode) is refused, never let through', async () => {
    expect((await send(billing, '/api/v1/billing/v1/items:batch')).status).toBe(401)
    for (const rest of ['/v1/items%3Abatch', '/v1/items%3abatch']) {
      const response = await send(billing, `/api/v1/billing${rest}`)
      expect([rest, response.status]).toEqual([rest, 400])
      expect(response.reached).toEqual([])
    }
  })

  test('%25 (a backend decoding twice would read %2569 as i) and encoded control characters (%00, %09, %7F) are ambiguous: 400, never forwarded', async () => {
    for (const rest of ['/adm%2569n', '/admin%00', '/admin%09', '/admin%7F', '/admin%0a']) {
      const response = await send(billing, `/api/v1/billing${rest}`)
      expect([rest, response.status]).toEqual([rest, 400])
      expect(response.reached).toEqual([])
    }
  })

  test('an encoded reserved character is ambiguous (backends differ on decoding it): /admin%3Fx, /admin%3Ax, /adm%40in get 400 and are never forwarded', async () => {
    for (const rest of ['/admin%3Fx', '/admin%3Ax', '/adm%40in', '/admin%2Cx', '/admin%3dx']) {
      const response = await send(billing, `/api/v1/billing${rest}`)
      expect([rest, response.status]).toEqual([rest, 400])
      expect(response.reached).toEqual([])
    }
  })
})

describe('on a service with routes, every ambiguous spelling is 400 bad_request and never forwarded', () => {
  test.each([
    '/public/..;/admin',
    '/public;/admin',
    '/admin;jsessionid=x',
    '/;/admin',
    '/public//admin',
    '//admin',
    '/admin//',
    '/admin%2F..%2Fpublic',
    '/admin%2f..%2fpublic',
    '/public%2Fadmin',
    '/public%5Cadmin',
    '/public%5cadmin',
    '/public/%2e%2e%2fadmin',
    '/public/..%2fadmin',
    '/public/..%5Cadmin',
  ])('%s', async (rest) => {
    await expectRefused(billing, `/api/v1/billing${rest}`)
  })

  test.each([
    ['/public/../admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/public/%2e./admin', '/admin'],
    ['/%2e/admin', '/admin'],
    ['/./admin', '/admin'],
    ['/admin/%2e', '/admin/'],
    ['/public/x/../../admin', '/admin'],
  ])('dot segment %s: refused (400), or resolved by Bun to %s and matched as that path — never a forward that skips /admin', async (rest, resolved) => {
    const target = `/api/v1/billing${rest}`
    const anonymous = await send(billing, target)
    expect(anonymous.reached).toEqual([])
    if (anonymous.status === 400) {
      expect(errorOf(anonymous)).toBe('bad_request')
      await expectRefused(billing, target)
      return
    }
    // Bun resolved the dot segments: the gateway matched, and forwards, the resolved path.
    await expectAdminOnly(billing, target, resolved)
  })

  test('a dot segment Bun leaves in the URL (after a raw #) is refused, never forwarded', async () => {
    await expectRefused(billing, '/api/v1/billing/public#/../admin')
  })

  test.each([
    ['/public\\admin', '/public/admin', 'service'],
    ['/public\\..\\admin', '/admin', 'admin'],
    ['/admin\\x', '/admin/x', 'admin'],
  ] as const)('raw backslash %s: refused (400), or read by Bun as %s and matched as that path — the backend never sees a backslash', async (rest, normalized, policy) => {
    const target = `/api/v1/billing${rest}`
    const anonymous = await send(billing, target)
    if (anonymous.status === 400) {
      expect(errorOf(anonymous)).toBe('bad_request')
      await expectRefused(billing, target)
      return
    }
    for (const seen of anonymous.reached) expect(seen.target).not.toContain('\\')
    if (policy === 'admin') await expectAdminOnly(billing, target, normalized)
    else expect(anonymous.reached.map((seen) => seen.target)).toEqual([normalized])
  })

  test('a raw # in the request target (not allowed in one by RFC 9112; Bun keeps it in the URL, and the upstream fetch cuts it off) is refused or matched as /admin: /admin#x never reaches the backend as /admin without the role', async () => {
    for (const rest of ['/admin#x', '/admin#', '/%61dmin#x']) {
      const anonymous = await send(billing, `/api/v1/billing${rest}`)
      expect([400, 401]).toContain(anonymous.status)
      expect(anonymous.reached).toEqual([])
      const wrongRole = await send(billing, `/api/v1/billing${rest}`, { token: user })
      expect([400, 403]).toContain(wrongRole.status)
      expect(wrongRole.reached).toEqual([])
    }
  })
})

describe('a service without routes forwards every spelling byte-exact (SPEC §4)', () => {
  test.each(['/a;b', '/a%2Fb', '/a%2fb', '/a%5Cb', '/a//b', '/..;/admin', '/admin;jsessionid=x', '/x/%2e%2e%2fy', '/a%2F..%2Fb?q=%2F'])('%s reaches its backend as sent', async (rest) => {
    const response = await send(plain, `/api/v1/plain${rest}`)
    expect(response.status).toBe(200)
    expect(response.reached.map((seen) => seen.target)).toEqual([rest])
  })

  // A known limit, written down in the README ("Reverse proxy"): Bun's fetch folds the `//` that
  // starts a request path to `/` (node:http does not). Inside a path, and below a base path, `//` stays.
  test('a path that starts with // right below a service without a base path reaches its backend with one /: Bun’s fetch folds it', async () => {
    const response = await send(plain, '/api/v1/plain//a')
    expect(response.status).toBe(200)
    expect(response.reached.map((seen) => seen.target)).toEqual(['/a'])
  })
})

describe('case', () => {
  test.each([
    ['/ADMIN', '/ADMIN'],
    ['/Admin/x', '/Admin/x'],
    ['/%41dmin', '/%41dmin'],
    ['/aDm%49N?x=1', '/aDm%49N?x=1'],
  ])('case_sensitive: false: %s is /admin and needs roles admin, forwarded as sent', async (rest, forwarded) => {
    await expectAdminOnly(folded, `/api/v1/folded${rest}`, forwarded)
  })

  test('case_sensitive: false still refuses ambiguous spellings, whatever their case', async () => {
    for (const rest of ['/ADMIN;x', '/PUBLIC%2fADMIN', '/x%5cADMIN', '//ADMIN']) await expectRefused(folded, `/api/v1/folded${rest}`)
  })

  test('default (case-sensitive): /ADMIN, /Admin/x and /%41dmin are other paths than /admin and get the service policy (documented: a case-folding backend needs case_sensitive: false)', async () => {
    await expectServicePolicy(billing, '/api/v1/billing/ADMIN', '/ADMIN')
    await expectServicePolicy(billing, '/api/v1/billing/Admin/x', '/Admin/x')
    await expectServicePolicy(billing, '/api/v1/billing/%41dmin', '/%41dmin')
  })
})

describe('the longest matching route wins', () => {
  test('/admin/reports has its own policy (roles auditor), not /admin’s: an auditor passes there, an admin does not', async () => {
    for (const rest of ['/admin/reports', '/admin/reports/2024', '/%61dmin/reports?x']) {
      const asAuditor = await send(billing, `/api/v1/billing${rest}`, { token: auditor })
      expect(asAuditor.status).toBe(200)
      expect(asAuditor.reached[0]!.headers.get('x-auth-subject')).toBe('audrey')
      const asAdmin = await send(billing, `/api/v1/billing${rest}`, { token: admin })
      expect(asAdmin.status).toBe(403)
      expect(asAdmin.reached).toEqual([])
    }
  })

  test('/admin/reportsx and /admin/x fall under /admin only: the auditor is refused, the admin passes', async () => {
    for (const rest of ['/admin/reportsx', '/admin/x/reports']) {
      expect((await send(billing, `/api/v1/billing${rest}`, { token: auditor })).status).toBe(403)
      expect((await send(billing, `/api/v1/billing${rest}`, { token: admin })).status).toBe(200)
    }
  })
})

describe('methods on a route', () => {
  test('POST to a GET-only route: 405 method_not_allowed with Allow: GET, HEAD (HEAD comes with GET), never forwarded', async () => {
    const response = await send(billing, '/api/v1/billing/readonly/x', { method: 'POST', body: 'x' })
    expect(response.status).toBe(405)
    expect(errorOf(response)).toBe('method_not_allowed')
    expect(header(response, 'allow')).toBe('GET, HEAD')
    expect(response.reached).toEqual([])
  })

  test('GET to it is forwarded; other paths of the service keep every method', async () => {
    expect((await send(billing, '/api/v1/billing/readonly/x')).reached.map((seen) => seen.method)).toEqual(['GET'])
    expect((await send(billing, '/api/v1/billing/writable', { method: 'POST', body: 'x' })).reached.map((seen) => seen.method)).toEqual(['POST'])
  })

  test('a CORS preflight to the GET-only route is still answered by the gateway (204), never forwarded', async () => {
    const response = await send(billing, '/api/v1/billing/readonly', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
    })
    expect(response.status).toBe(204)
    expect(header(response, 'access-control-allow-origin')).not.toBeNull()
    expect(response.reached).toEqual([])
  })

  test('a plain OPTIONS (not a preflight) is another method: 405 with Allow: GET, HEAD', async () => {
    const response = await send(billing, '/api/v1/billing/readonly', { method: 'OPTIONS' })
    expect(response.status).toBe(405)
    expect(header(response, 'allow')).toBe('GET, HEAD')
    expect(response.reached).toEqual([])
  })
})

describe('auth: optional and auth: off', () => {
  test('optional, no token: passes without X-Auth-Subject, and a client’s own X-Auth-Subject is removed', async () => {
    const response = await send(optional, '/api/v1/optional/x', { headers: { 'X-Auth-Subject': 'mallory' } })
    expect(response.status).toBe(200)
    expect(response.reached[0]!.headers.get('x-auth-subject')).toBeNull()
  })

  test('optional, a valid token: X-Auth-Subject is its sub (replacing a client’s own)', async () => {
    const response = await send(optional, '/api/v1/optional/x', { token: user, headers: { 'X-Auth-Subject': 'mallory' } })
    expect(response.status).toBe(200)
    expect(response.reached[0]!.headers.get('x-auth-subject')).toBe('alice')
  })

  test('optional, an invalid token: 401 with error="invalid_token", never forwarded', async () => {
    for (const token of [forged, 'not-a-jwt']) {
      const response = await send(optional, '/api/v1/optional/x', { token })
      expect(response.status).toBe(401)
      expect(header(response, 'www-authenticate')).toBe('Bearer error="invalid_token"')
      expect(response.reached).toEqual([])
    }
  })

  test('optional with require, no token: 401 (not a pass); a token without the claim 403; with it 200', async () => {
    const anonymous = await send(optional, '/api/v1/optional/need')
    expect(anonymous.status).toBe(401)
    expect(header(anonymous, 'www-authenticate')).toBe('Bearer')
    expect(anonymous.reached).toEqual([])
    expect((await send(optional, '/api/v1/optional/need', { token: user })).status).toBe(403)
    expect((await send(optional, '/api/v1/optional/need', { token: admin })).status).toBe(200)
  })

  test('off: no token is read (an invalid one passes, a valid one sets no X-Auth-Subject), a client’s X-Auth-Subject is removed, Authorization is forwarded as sent', async () => {
    for (const token of [forged, user, 'not-a-jwt']) {
      const response = await send(optional, '/api/v1/optional/off/x', { token, headers: { 'X-Auth-Subject': 'mallory' } })
      expect(response.status).toBe(200)
      expect(response.reached[0]!.headers.get('x-auth-subject')).toBeNull()
      expect(response.reached[0]!.headers.get('authorization')).toBe(`Bearer ${token}`)
    }
  })
})

describe('require: which claims hold', () => {
  const token = (held: Record<string, unknown>) => hs256Token(TEST_SECRET, { claims: held })
  const status = async (rest: string, held: Record<string, unknown>) => (await send(claims, `/api/v1/claims${rest}`, { token: await token(held) })).status

  test('equals: the claim is the value', async () => {
    expect(await status('/equals', { tenant: 'acme' })).toBe(200)
    expect(await status('/equals', { tenant: 'acme-corp' })).toBe(403)
    expect(await status('/equals', { tenant: 'ACME' })).toBe(403)
    expect(await status('/equals', {})).toBe(403)
  })

  test('an array claim holding the value', async () => {
    expect(await status('/member', { roles: ['viewer', 'editor'] })).toBe(200)
    expect(await status('/member', { roles: ['viewer', 'editors'] })).toBe(403)
    expect(await status('/member', { roles: [] })).toBe(403)
  })

  test('a string of space-separated words holding it as a whole word (OAuth scope)', async () => {
    expect(await status('/scope', { scope: 'read write' })).toBe(200)
    expect(await status('/scope', { scope: 'write' })).toBe(200)
    expect(await status('/scope', { scope: 'read writer' })).toBe(403)
    expect(await status('/scope', { scope: 'read,write' })).toBe(403)
  })

  test('a list of values: any one of them will do', async () => {
    expect(await status('/any', { roles: ['publisher'] })).toBe(200)
    expect(await status('/any', { roles: 'editor' })).toBe(200)
    expect(await status('/any', { roles: ['viewer'] })).toBe(403)
  })

  test('several claims: all of them must hold, else 403 forbidden and nothing forwarded', async () => {
    expect(await status('/all', { tenant: 'acme', roles: ['editor'], email_verified: true })).toBe(200)
    const before = claims.seen.length
    for (const missing of [
      { roles: ['editor'], email_verified: true },
      { tenant: 'acme', email_verified: true },
      { tenant: 'acme', roles: ['editor'] },
      { tenant: 'acme', roles: ['editor'], email_verified: 'true' },
    ]) {
      const response = await send(claims, '/api/v1/claims/all', { token: await token(missing) })
      expect(response.status).toBe(403)
      expect(errorOf(response)).toBe('forbidden')
    }
    expect(claims.seen.length).toBe(before)
  })
})

describe('header rules', () => {
  test('request: set replaces the client’s value, remove drops the client’s header, others pass', async () => {
    const response = await send(headers, '/api/v1/headers/x', { headers: { 'X-Api-Version': '1', 'X-Debug': 'yes', 'X-Other': 'kept' } })
    expect(response.status).toBe(200)
    const seen = response.reached[0]!.headers
    expect(seen.get('x-api-version')).toBe('2')
    expect(seen.get('x-debug')).toBeNull()
    expect(seen.get('x-other')).toBe('kept')
  })

  test('response: set replaces or adds to the backend’s response, remove drops a backend header, others pass', async () => {
    const response = await send(headers, '/api/v1/headers/x')
    expect(response.status).toBe(200)
    expect(header(response, 'x-policy')).toBe('headers')
    expect(header(response, 'cache-control')).toBe('no-store')
    expect(header(response, 'x-backend-internal')).toBeNull()
    expect(header(response, 'x-kept')).toBe('yes')
  })

  test('a route’s response rules add to its service’s', async () => {
    const response = await send(headers, '/api/v1/headers/route')
    expect(header(response, 'x-route')).toBe('route')
    expect(header(response, 'x-policy')).toBe('headers')
    expect(header(response, 'x-backend-internal')).toBeNull()
  })

  test.each([
    ['401', '/api/v1/headers/secure', {}],
    ['405', '/api/v1/headers/getonly', { method: 'DELETE' }],
    ['413', '/api/v1/headers/small', { method: 'POST', body: 'too long' }],
    ['400', '/api/v1/headers/a;b', {}],
    ['504', '/api/v1/headers/slow/sleep', {}],
  ] as const)('the gateway’s own %s answer carries no policy response header', async (status, target, options) => {
    const response = await send(headers, target, options)
    expect(response.status).toBe(Number(status))
    expect(response.headers.get('content-type')?.[0]).toContain('application/json')
    expect(header(response, 'x-policy')).toBeNull()
    expect(header(response, 'cache-control')).not.toBe('no-store')
  })
})

describe('limits per route', () => {
  test('timeout_ms: a route whose backend answers too late gets 504, another route of the same service waits for it', async () => {
    const late = await send(limits, '/api/v1/limits/slow/sleep')
    expect(late.status).toBe(504)
    expect(errorOf(late)).toBe('gateway_timeout')
    expect(late.reached.length).toBe(1)
    const patient = await send(limits, '/api/v1/limits/other/sleep')
    expect(patient.status).toBe(200)
  })

  test('max_body_bytes: a declared Content-Length over the route’s limit is 413 before the backend sees anything', async () => {
    const tooLarge = await send(limits, '/api/v1/limits/small', { method: 'POST', body: '01234567890' })
    expect(tooLarge.status).toBe(413)
    expect(errorOf(tooLarge)).toBe('payload_too_large')
    expect(tooLarge.reached).toEqual([])
  })

  test('max_body_bytes: a body at the limit, and a larger one on another route, are forwarded whole', async () => {
    const atLimit = await send(limits, '/api/v1/limits/small', { method: 'POST', body: '0123456789' })
    expect(atLimit.status).toBe(200)
    expect(atLimit.reached[0]!.body).toBe('0123456789')
    const elsewhere = await send(limits, '/api/v1/limits/other', { method: 'POST', body: '01234567890' })
    expect(elsewhere.status).toBe(200)
    expect(elsewhere.reached[0]!.body).toBe('01234567890')
  })
})
