/**
 * Authentication with HS256 (AUTH_JWT_SECRET): which requests need a token, where it may travel,
 * what a backend sees, and what the client hears when it is refused. Every token is really
 * signed, with jose.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { TEST_SECRET, hs256Token, nowSeconds, signingKey, signedToken, unsecuredToken } from '../helpers/tokens'

let backend: MockBackend
let gw: RunningGateway
let alice: string

beforeAll(async () => {
  backend = startBackend((request) => Response.json({ subject: request.headers.get('x-auth-subject') }))
  gw = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, ORCHESTRATOR_URL: backend.url, PUBLISH_TOKEN: 'publisher-token', RATE_LIMIT: '0' })
  alice = await hs256Token(TEST_SECRET)
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
})

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const get = (path: string, headers: Record<string, string> = {}) => fetch(`${gw.url}${path}`, { headers })

async function expectUnauthorized(response: Response, challenge: string, message?: string) {
  expect(response.status).toBe(401)
  expect(response.headers.get('www-authenticate')).toBe(challenge)
  const body = (await response.json()) as { error: string; message: string; request_id: string }
  expect(body.error).toBe('unauthorized')
  expect(body.request_id).toBe(response.headers.get('x-request-id')!)
  if (message !== undefined) expect(body.message).toBe(message)
}

const INVALID = 'Bearer error="invalid_token"'

describe('which requests need a token', () => {
  test('a proxied request without a token: 401 with WWW-Authenticate: Bearer (no error code), and the backend never sees it', async () => {
    const before = backend.seen.length
    await expectUnauthorized(await get('/api/v1/orchestrator/workflows'), 'Bearer')
    expect(backend.seen.length).toBe(before)
  })

  test('with a valid token: 200, and the backend receives X-Auth-Subject', async () => {
    const response = await get('/api/v1/orchestrator/workflows', bearer(alice))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ subject: 'alice' })
  })

  test('unknown paths and unknown services need a token too: 401 first, their 404 only with one', async () => {
    await expectUnauthorized(await get('/nowhere'), 'Bearer')
    await expectUnauthorized(await get('/api/v1/no-such-service/x'), 'Bearer')
    expect((await get('/nowhere', bearer(alice))).status).toBe(404)
    expect(((await (await get('/api/v1/no-such-service/x', bearer(alice))).json()) as { error: string }).error).toBe('unknown_service')
  })

  test('health, readiness, metrics and CORS preflights need no token', async () => {
    for (const path of ['/health', '/ready', '/metrics']) expect((await get(path)).status).toBe(200)
    const preflight = await fetch(`${gw.url}/api/v1/orchestrator/workflows`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization')
  })

  test('publishing keeps PUBLISH_TOKEN and needs no JWT; a JWT is no publish token', async () => {
    const publish = (headers: Record<string, string>) =>
      fetch(`${gw.url}/api/v1/events/alice`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"event_type":"run.started","data":{}}' })
    expect((await publish(bearer('publisher-token'))).status).toBe(202)
    expect((await publish(bearer(alice))).status).toBe(401)
  })
})

describe('where the token may travel', () => {
  test('the cookie AUTH_COOKIE (default access_token) carries a token', async () => {
    expect((await get('/api/v1/orchestrator/x', { cookie: `theme=dark; access_token=${alice}` })).status).toBe(200)
  })

  test('AUTH_COOKIE names another cookie; the default name then carries nothing', async () => {
    const named = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_COOKIE: 'gw_session', ORCHESTRATOR_URL: backend.url })
    try {
      expect((await fetch(`${named.url}/api/v1/orchestrator/x`, { headers: { cookie: `gw_session=${alice}` } })).status).toBe(200)
      expect((await fetch(`${named.url}/api/v1/orchestrator/x`, { headers: { cookie: `access_token=${alice}` } })).status).toBe(401)
    } finally {
      await named.stop()
    }
  })

  test('the access_token query parameter carries a token, and is removed before forwarding, the rest of the query byte-exact', async () => {
    const response = await get(`/api/v1/orchestrator/search?q=a%20b&access_token=${alice}&x=%2F+y&flag`)
    expect(response.status).toBe(200)
    expect(backend.seen.at(-1)!.target).toBe('/search?q=a%20b&x=%2F+y&flag')
    expect((await get(`/api/v1/orchestrator/only?access_token=${alice}`)).status).toBe(200)
    expect(backend.seen.at(-1)!.target).toBe('/only')
    expect((await get(`/api/v1/orchestrator/only?&access_token=${alice}`)).status).toBe(200)
    expect(backend.seen.at(-1)!.target).toBe('/only')
  })

  test('a percent-encoded access_token name is a token too, and is removed all the same (backends decode names)', async () => {
    expect((await get(`/api/v1/orchestrator/enc?access%5Ftoken=${alice}&a=1`)).status).toBe(200)
    expect(backend.seen.at(-1)!.target).toBe('/enc?a=1')
  })

  test('an empty access_token parameter is no token: the cookie still counts', async () => {
    expect((await get('/api/v1/orchestrator/x?access_token=', { cookie: `access_token=${alice}` })).status).toBe(200)
  })

  test('no log line holds the token, from the query, the header or the cookie', async () => {
    const marker = await hs256Token(TEST_SECRET, { claims: { sub: 'log-probe' } })
    await get(`/api/v1/orchestrator/logged?access_token=${marker}`)
    await get('/api/v1/orchestrator/logged', bearer(marker))
    await get('/api/v1/orchestrator/logged', { cookie: `access_token=${marker}` })
    await get(`/api/v1/orchestrator/logged?access_token=${marker}x`)
    const signature = marker.split('.')[2]!
    expect(gw.rawLogs.some((line) => line.includes('/logged'))).toBe(true)
    expect(gw.rawLogs.filter((line) => line.includes(signature) || line.includes(TEST_SECRET))).toEqual([])
  })

  test('when Authorization is present it is the only token considered: a bad header is not rescued by a good cookie or query', async () => {
    const response = await get(`/api/v1/orchestrator/x?access_token=${alice}`, { authorization: 'Bearer not-a-jwt', cookie: `access_token=${alice}` })
    await expectUnauthorized(response, INVALID)
  })

  test('an Authorization header of another scheme counts as no token (RFC 6750 §3.1: no error code)', async () => {
    await expectUnauthorized(await get('/api/v1/orchestrator/x', { authorization: 'Basic YWxpY2U6cHc=', cookie: `access_token=${alice}` }), 'Bearer')
  })

  test('the Bearer scheme is case-insensitive', async () => {
    expect((await get('/api/v1/orchestrator/x', { authorization: `bearer ${alice}` })).status).toBe(200)
  })
})

describe('what makes a token invalid', () => {
  const cases: [string, () => Promise<string>, string][] = [
    ['expired beyond the 30 s leeway', () => hs256Token(TEST_SECRET, { claims: { exp: nowSeconds() - 40 } }), 'the token has expired'],
    ['not valid before a time beyond the leeway (nbf)', () => hs256Token(TEST_SECRET, { claims: { nbf: nowSeconds() + 120 } }), 'the token is not valid'],
    ['without exp', () => hs256Token(TEST_SECRET, { claims: { exp: undefined } }), 'the token is not valid'],
    ['without sub', () => hs256Token(TEST_SECRET, { claims: { sub: undefined } }), 'the token is not valid'],
    ['signed with another secret', () => hs256Token('another-secret-of-at-least-32-bytes!!'), 'the token is not valid'],
    ['with alg none', async () => unsecuredToken(), 'the token is not valid'],
    ['RS256, though the gateway holds an HS256 secret', async () => signedToken(await signingKey('RS256', 'k')), 'the token is not valid'],
    ['with a sub that cannot be a header value', () => hs256Token(TEST_SECRET, { claims: { sub: 'eve\r\nX-Admin: 1' } }), 'the token is not valid'],
    ['with a sub that a header would trim into another (" admin ")', () => hs256Token(TEST_SECRET, { claims: { sub: ' admin ' } }), 'the token is not valid'],
  ]
  for (const [name, make, message] of cases) {
    test(`${name}: 401 invalid_token`, async () => {
      await expectUnauthorized(await get('/api/v1/orchestrator/x', bearer(await make())), INVALID, message)
    })
  }

  test('a tampered payload with the original signature: 401', async () => {
    const [header, , signature] = alice.split('.')
    const payload = Buffer.from(JSON.stringify({ sub: 'admin', exp: nowSeconds() + 3600 })).toString('base64url')
    await expectUnauthorized(await get('/api/v1/orchestrator/x', bearer(`${header}.${payload}.${signature}`)), INVALID)
  })

  test('clock leeway: expired 10 s ago, or valid from 10 s ahead, is still accepted', async () => {
    expect((await get('/api/v1/orchestrator/x', bearer(await hs256Token(TEST_SECRET, { claims: { exp: nowSeconds() - 10 } })))).status).toBe(200)
    expect((await get('/api/v1/orchestrator/x', bearer(await hs256Token(TEST_SECRET, { claims: { nbf: nowSeconds() + 10 } })))).status).toBe(200)
  })

  test('a 10 KB garbage Authorization header gets 401, and the gateway keeps serving', async () => {
    const garbage = 'Bearer ' + 'x.'.repeat(5_000)
    await expectUnauthorized(await get('/api/v1/orchestrator/x', { authorization: garbage }), INVALID)
    await expectUnauthorized(await get('/api/v1/orchestrator/x', { authorization: 'A'.repeat(10_240) }), 'Bearer')
    expect((await get('/api/v1/orchestrator/x', bearer(alice))).status).toBe(200)
  })
})

describe('a token in a cookie, which browsers send on their own (CSRF)', () => {
  const post = (headers: Record<string, string>) =>
    fetch(`${gw.url}/api/v1/orchestrator/x`, { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body: 'approve' })

  test("a cookie's token on a POST from another site's page: 403, and the backend never sees it", async () => {
    const before = backend.seen.length
    const response = await post({ cookie: `access_token=${alice}`, origin: 'https://evil.example' })
    expect(response.status).toBe(403)
    expect(((await response.json()) as { error: string }).error).toBe('forbidden')
    expect(backend.seen.length).toBe(before)
  })

  test("from the gateway's own origin, without Origin (not a browser page), or with a Bearer token: accepted", async () => {
    expect((await post({ cookie: `access_token=${alice}`, origin: gw.url })).status).toBe(200)
    expect((await post({ cookie: `access_token=${alice}` })).status).toBe(200)
    expect((await post({ ...bearer(alice), origin: 'https://evil.example' })).status).toBe(200)
    // Reading is not writing: a GET with the cookie from anywhere (its answer is the browser's CORS business).
    expect((await get('/api/v1/orchestrator/x', { cookie: `access_token=${alice}`, origin: 'https://evil.example' })).status).toBe(200)
  })

  test("behind a TRUST_PROXY peer the own origin is X-Forwarded-Proto and X-Forwarded-Host; from any other peer those name nothing", async () => {
    const proxied = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, ORCHESTRATOR_URL: backend.url, TRUST_PROXY: '127.0.0.1', RATE_LIMIT: '0' })
    try {
      const send = (base: string, headers: Record<string, string>) =>
        fetch(`${base}/api/v1/orchestrator/x`, { method: 'POST', headers: { cookie: `access_token=${alice}`, ...headers }, body: 'x' })
      const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com' }
      expect((await send(proxied.url, { ...forwarded, origin: 'https://app.example.com' })).status).toBe(200)
      expect((await send(proxied.url, { ...forwarded, origin: 'https://APP.example.com' })).status).toBe(200)
      expect((await send(proxied.url, { ...forwarded, origin: 'https://evil.example' })).status).toBe(403)
      // The same headers from a peer that is not a trusted proxy are the attacker's own words.
      expect((await send(gw.url, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', origin: 'https://evil.example' })).status).toBe(403)
    } finally {
      await proxied.stop()
    }
  })

  test('from an origin listed in CORS_ORIGINS: accepted', async () => {
    const listed = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, ORCHESTRATOR_URL: backend.url, CORS_ORIGINS: 'https://app.example.com' })
    try {
      const send = (origin: string) =>
        fetch(`${listed.url}/api/v1/orchestrator/x`, { method: 'POST', headers: { cookie: `access_token=${alice}`, origin }, body: 'x' })
      expect((await send('https://app.example.com')).status).toBe(200)
      expect((await send('https://evil.example')).status).toBe(403)
    } finally {
      await listed.stop()
    }
  })
})

describe('identity toward backends', () => {
  test("a client's own X-Auth-Subject never reaches the backend: replaced by the token's sub", async () => {
    const response = await get('/api/v1/orchestrator/x', { ...bearer(alice), 'x-auth-subject': 'admin' })
    expect(await response.json()).toEqual({ subject: 'alice' })
  })

  test('nor under the spellings backends read as the same header (X_Auth_Subject and kin)', async () => {
    const spoofs = { x_auth_subject: 'admin', 'x-auth_subject': 'admin', 'X_Auth-Subject': 'admin' }
    await get('/api/v1/orchestrator/x', { ...bearer(alice), ...spoofs })
    const headers = backend.seen.at(-1)!.headers
    expect([...headers.keys()].filter((name) => name.replaceAll('_', '-') === 'x-auth-subject')).toEqual(['x-auth-subject'])
    expect(headers.get('x-auth-subject')).toBe('alice')
  })

  test("X-Forwarded-Proto is the gateway's own scheme, whatever the client sent", async () => {
    await get('/api/v1/orchestrator/x', { ...bearer(alice), 'x-forwarded-proto': 'https' })
    expect(backend.seen.at(-1)!.headers.get('x-forwarded-proto')).toBe('http')
  })

  test('Authorization and cookies are forwarded as sent', async () => {
    await get('/api/v1/orchestrator/x', { ...bearer(alice), cookie: 'session=abc' })
    expect(backend.seen.at(-1)!.headers.get('authorization')).toBe(`Bearer ${alice}`)
    expect(backend.seen.at(-1)!.headers.get('cookie')).toBe('session=abc')
  })
})

test('authentication failures are counted by reason', async () => {
  const scrape = async () => {
    const text = await (await get('/metrics')).text()
    const count = (reason: string) => Number(new RegExp(`^gateway_auth_failures_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text)?.[1])
    return { missing: count('missing'), invalid: count('invalid'), expired: count('expired') }
  }
  const before = await scrape()
  await get('/api/v1/orchestrator/x')
  await get('/api/v1/orchestrator/x', bearer('nope'))
  await get('/api/v1/orchestrator/x', bearer(await hs256Token(TEST_SECRET, { claims: { exp: nowSeconds() - 100 } })))
  const after = await scrape()
  expect(after).toEqual({ missing: before.missing + 1, invalid: before.invalid + 1, expired: before.expired + 1 })
})

test('rate limiting comes before authentication: an empty bucket gives 429 without looking at the token', async () => {
  const limited = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, ORCHESTRATOR_URL: backend.url, RATE_LIMIT: '60', RATE_LIMIT_BURST: '2' })
  try {
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${limited.url}/api/v1/orchestrator/x`)).status)
    expect(statuses).toEqual([401, 401, 429])
  } finally {
    await limited.stop()
  }
})

test("without authentication, a client's X-Auth-Subject is removed all the same", async () => {
  const open = await startGateway({ ORCHESTRATOR_URL: backend.url })
  try {
    const response = await fetch(`${open.url}/api/v1/orchestrator/x`, { headers: { 'x-auth-subject': 'admin' } })
    expect(await response.json()).toEqual({ subject: null })
  } finally {
    await open.stop()
  }
})

test('a secret shorter than 32 bytes starts, with a warning that never shows the secret', async () => {
  const weak = await startGateway({ AUTH_JWT_SECRET: 'tiny-s3cret', ORCHESTRATOR_URL: backend.url })
  try {
    const warning = weak.logs.find((l) => l.level === 'warn' && l.msg.includes('AUTH_JWT_SECRET is shorter than 32 bytes'))
    expect(warning).toBeDefined()
    expect(weak.rawLogs.some((line) => line.includes('tiny-s3cret'))).toBe(false)
    expect((await fetch(`${weak.url}/api/v1/orchestrator/x`, { headers: { authorization: `Bearer ${await hs256Token('tiny-s3cret')}` } })).status).toBe(200)
  } finally {
    await weak.stop()
  }
})
