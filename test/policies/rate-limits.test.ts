/**
 * Per-service and per-route rate limits from a policy file (SPEC §12 `rate_limit`, §5, §7):
 * each level that sets a limit has buckets of its own, `RateLimit-*` describe the bucket that
 * decided, `key: subject` is charged after the token is verified (the global client-IP bucket
 * first), buckets are shared exactly through Redis in cluster mode, and a reload keeps each
 * bucket's tokens, capped at its new burst.
 *
 * Every gateway here is its own process (`bun src/main.ts`) reading a real policy file. Rates
 * are 1 per minute, so no bucket refills noticeably while a test runs; each test limits its own
 * client addresses, sent as `X-Forwarded-For` from the trusted loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type GatewayProcess, startGatewayProcess } from '../helpers/gateway-process'
import { type TestRedis, startRedis } from '../helpers/redis'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'
import { waitFor } from '../helpers/wait'

const dir = mkdtempSync(join(tmpdir(), 'gw-rate-policies-'))
let files = 0

/** Writes `document` (JSON, which is YAML) to a new policy file and returns its path. */
function policyFile(document: unknown): string {
  const path = join(dir, `policies-${files++}.yaml`)
  writeFileSync(path, JSON.stringify(document, null, 2))
  return path
}

/** Replaces the policy file at `path` (whole: written next to it, then renamed over it). */
function rewrite(path: string, document: unknown): void {
  const next = `${path}.next`
  writeFileSync(next, JSON.stringify(document, null, 2))
  renameSync(next, path)
}

interface Hit {
  status: number
  /** `RateLimit-Limit`, `RateLimit-Remaining` (null when absent). */
  limit: string | null
  remaining: string | null
  reset: string | null
  retryAfter: string | null
  body: string
}

/** One request from client address `ip`, with `token` as a bearer token when given. */
async function hit(gw: GatewayProcess, path: string, ip: string, token?: string): Promise<Hit> {
  const headers: Record<string, string> = { 'x-forwarded-for': ip }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const response = await fetch(`${gw.url}${path}`, { headers })
  return {
    status: response.status,
    limit: response.headers.get('ratelimit-limit'),
    remaining: response.headers.get('ratelimit-remaining'),
    reset: response.headers.get('ratelimit-reset'),
    retryAfter: response.headers.get('retry-after'),
    body: await response.text(),
  }
}

/** `count` requests in a row; what each got. */
async function hits(count: number, gw: GatewayProcess, path: string, ip: string, token?: string): Promise<Hit[]> {
  const all: Hit[] = []
  for (let i = 0; i < count; i++) all.push(await hit(gw, path, ip, token))
  return all
}

/** SIGHUP, and wait until the process logged its `reloads`-th `Configuration reloaded`. */
async function reloadAndWait(gw: GatewayProcess, reloads: number): Promise<void> {
  process.kill(gw.pid, 'SIGHUP')
  expect(await waitFor(() => gw.logs.filter((l) => l.msg === 'Configuration reloaded').length >= reloads, 5_000)).toBe(true)
}

const token = (sub: string) => hs256Token(TEST_SECRET, { claims: { sub } })
/** Well formed, signed with another key: the gateway must refuse it (401). */
const forgedToken = (sub: string) => hs256Token('another-secret-of-32-bytes-length!!', { claims: { sub } })

let backend: MockBackend

beforeAll(() => {
  backend = startBackend(() => Response.json({ ok: true }))
})

afterAll(() => {
  backend.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('one gateway: each level that sets rate_limit has its own buckets', () => {
  let gw: GatewayProcess

  beforeAll(async () => {
    const file = policyFile({
      services: {
        // Authentication is configured (for `subj`); these two do not read tokens.
        shop: {
          url: backend.url,
          auth: 'off',
          rate_limit: { rate: 1, burst: 4 },
          routes: [
            { path: '/own', rate_limit: { rate: 1, burst: 3 } },
            { path: '/free', rate_limit: 'off' },
            // Sets no limit of its own: the service's buckets.
            { path: '/inherits', timeout_ms: 5000 },
          ],
        },
        // Sets no limit: the environment's (RATE_LIMIT, RATE_LIMIT_BURST).
        plain: { url: backend.url, auth: 'off' },
        subj: {
          url: backend.url,
          auth: 'required',
          rate_limit: { rate: 1, burst: 3, key: 'subject' },
          routes: [{ path: '/opt', auth: 'optional' }],
        },
      },
    })
    gw = await startGatewayProcess({
      GATEWAY_CONFIG: file,
      RATE_LIMIT: '1',
      RATE_LIMIT_BURST: '10',
      TRUST_PROXY: '127.0.0.1',
      AUTH_JWT_SECRET: TEST_SECRET,
    })
  }, 20_000)

  afterAll(async () => {
    await gw?.kill()
  })

  test("spending a route's own bucket spends neither its service's nor the global one; RateLimit-Limit is the burst of the bucket that decided", async () => {
    const ip = '198.51.100.1'
    const own = await hits(4, gw, '/api/v1/shop/own/x', ip)
    expect(own.map((h) => h.status)).toEqual([200, 200, 200, 429])
    expect(own.map((h) => h.limit)).toEqual(['3', '3', '3', '3'])
    expect(own.map((h) => h.remaining)).toEqual(['2', '1', '0', '0'])
    expect(Number(own[3]!.retryAfter)).toBeGreaterThanOrEqual(1)
    expect(JSON.parse(own[3]!.body).error).toBe('rate_limited')
    // The service's bucket is whole: 4 of 4.
    const service = await hit(gw, '/api/v1/shop/x', ip)
    expect(service).toMatchObject({ status: 200, limit: '4', remaining: '3' })
    // A route without a limit of its own spends the service's bucket, the same one.
    const inherits = await hit(gw, '/api/v1/shop/inherits/x', ip)
    expect(inherits).toMatchObject({ status: 200, limit: '4', remaining: '2' })
    // The global bucket is whole too: 10 of 10.
    const global = await hit(gw, '/api/v1/plain/x', ip)
    expect(global).toMatchObject({ status: 200, limit: '10', remaining: '9' })
  })

  test("and the other way round: an empty service bucket and an empty global bucket leave a route's own bucket whole", async () => {
    const ip = '198.51.100.2'
    const service = await hits(5, gw, '/api/v1/shop/x', ip)
    expect(service.map((h) => h.status)).toEqual([200, 200, 200, 200, 429])
    expect(service.map((h) => h.limit)).toEqual(['4', '4', '4', '4', '4'])
    const global = await hits(11, gw, '/api/v1/plain/x', ip)
    expect(global.map((h) => h.status)).toEqual([...Array(10).fill(200), 429])
    expect(global[10]!.limit).toBe('10')
    // The service's bucket was not spent by the global one's requests, nor the other way round.
    expect(await hit(gw, '/api/v1/shop/inherits/x', ip)).toMatchObject({ status: 429, limit: '4' })
    const own = await hits(4, gw, '/api/v1/shop/own/x', ip)
    expect(own.map((h) => h.status)).toEqual([200, 200, 200, 429])
    expect(own.map((h) => h.remaining)).toEqual(['2', '1', '0', '0'])
  })

  test('rate_limit: off on a route: never limited and no RateLimit-* headers there, even with RATE_LIMIT set and every other bucket empty', async () => {
    const ip = '198.51.100.3'
    expect((await hits(5, gw, '/api/v1/shop/x', ip)).at(-1)!.status).toBe(429)
    expect((await hits(11, gw, '/api/v1/plain/x', ip)).at(-1)!.status).toBe(429)
    const free = await hits(25, gw, '/api/v1/shop/free/x', ip)
    expect(free.map((h) => h.status)).toEqual(Array(25).fill(200))
    for (const h of free) expect([h.limit, h.remaining, h.reset]).toEqual([null, null, null])
  })

  test('key: subject: two tokens with different sub from one client IP have separate buckets', async () => {
    const ip = '203.0.113.10'
    const alice = await hits(4, gw, '/api/v1/subj/x', ip, await token('alice-1'))
    expect(alice.map((h) => h.status)).toEqual([200, 200, 200, 429])
    // The subject's bucket decided (burst 3), not the global one (burst 10) spent before it.
    expect(alice.map((h) => h.limit)).toEqual(['3', '3', '3', '3'])
    expect(alice.map((h) => h.remaining)).toEqual(['2', '1', '0', '0'])
    const bob = await hits(4, gw, '/api/v1/subj/x', ip, await token('bob-1'))
    expect(bob.map((h) => h.status)).toEqual([200, 200, 200, 429])
    expect(bob.map((h) => h.remaining)).toEqual(['2', '1', '0', '0'])
  })

  test('key: subject: one sub from two client IPs shares one bucket', async () => {
    const carol = await token('carol-1')
    expect(await hit(gw, '/api/v1/subj/x', '203.0.113.20', carol)).toMatchObject({ status: 200, limit: '3', remaining: '2' })
    expect(await hit(gw, '/api/v1/subj/x', '203.0.113.21', carol)).toMatchObject({ status: 200, limit: '3', remaining: '1' })
    expect(await hit(gw, '/api/v1/subj/x', '203.0.113.20', carol)).toMatchObject({ status: 200, limit: '3', remaining: '0' })
    expect((await hit(gw, '/api/v1/subj/x', '203.0.113.21', carol)).status).toBe(429)
    expect((await hit(gw, '/api/v1/subj/x', '203.0.113.20', carol)).status).toBe(429)
    // A third address, never seen: the same subject, the same empty bucket.
    expect(await hit(gw, '/api/v1/subj/x', '203.0.113.22', carol)).toMatchObject({ status: 429, limit: '3' })
  })

  test("key: subject: invalid tokens get 401 and spend only the global client-IP bucket; a flood of them ends in that bucket's 429, the subject's bucket untouched", async () => {
    const ip = '203.0.113.30'
    const forged = await forgedToken('dave-1')
    const flood = await hits(12, gw, '/api/v1/subj/x', ip, forged)
    expect(flood.map((h) => h.status)).toEqual([...Array(10).fill(401), 429, 429])
    // Each 401 was charged to the global bucket (burst 10), and the 429s came from it.
    expect(flood.map((h) => h.limit)).toEqual(Array(12).fill('10'))
    expect(flood.slice(0, 10).map((h) => h.remaining)).toEqual(['9', '8', '7', '6', '5', '4', '3', '2', '1', '0'])
    expect(JSON.parse(flood[10]!.body).error).toBe('rate_limited')
    // A valid token from that address is refused by the same empty IP bucket, before its subject's.
    const dave = await token('dave-1')
    expect(await hit(gw, '/api/v1/subj/x', ip, dave)).toMatchObject({ status: 429, limit: '10' })
    // From elsewhere, dave's own bucket is whole: the flood never reached it.
    expect(await hit(gw, '/api/v1/subj/x', '203.0.113.31', dave)).toMatchObject({ status: 200, limit: '3', remaining: '2' })
  })

  test("key: subject: a request without a token on an optional route is limited by its client IP, in the subject policy's buckets", async () => {
    const ip = '203.0.113.40'
    const anonymous = await hits(4, gw, '/api/v1/subj/opt/x', ip)
    expect(anonymous.map((h) => h.status)).toEqual([200, 200, 200, 429])
    expect(anonymous.map((h) => h.limit)).toEqual(['3', '3', '3', '3'])
    expect(anonymous.map((h) => h.remaining)).toEqual(['2', '1', '0', '0'])
    // Another address without a token: a bucket of its own.
    expect(await hit(gw, '/api/v1/subj/opt/x', '203.0.113.41')).toMatchObject({ status: 200, limit: '3', remaining: '2' })
    // The same address with a token: its subject's bucket, not the address's.
    expect(await hit(gw, '/api/v1/subj/opt/x', ip, await token('erin-1'))).toMatchObject({ status: 200, limit: '3', remaining: '2' })
  })
})

describe('cluster mode: two gateway processes on one redis-server, one policy file', () => {
  let redis: TestRedis
  let a: GatewayProcess
  let b: GatewayProcess
  let file: string
  const documentWith = (reloadBurst: number) => ({
    services: {
      shared: {
        url: backend.url,
        auth: 'off',
        routes: [
          { path: '/byip', rate_limit: { rate: 1, burst: 4 } },
          { path: '/reload', rate_limit: { rate: 1, burst: reloadBurst } },
        ],
      },
      shared_sub: {
        url: backend.url,
        routes: [{ path: '/bysub', rate_limit: { rate: 1, burst: 4, key: 'subject' } }],
      },
    },
  })

  beforeAll(async () => {
    redis = await startRedis()
    file = policyFile(documentWith(10))
    const env = { GATEWAY_CONFIG: file, REDIS_URL: redis.url, RATE_LIMIT: '1', RATE_LIMIT_BURST: '100', TRUST_PROXY: '127.0.0.1', AUTH_JWT_SECRET: TEST_SECRET }
    ;[a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)])
  }, 30_000)

  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()])
    await redis?.stop()
  })

  test('key ip: a route bucket of burst 4 is shared exactly: 4 requests in total across both gateways, then 429 on both', async () => {
    const ip = '192.0.2.1'
    const taken: Hit[] = []
    for (const gw of [a, b, a, b]) taken.push(await hit(gw, '/api/v1/shared/byip/x', ip))
    expect(taken.map((h) => h.status)).toEqual([200, 200, 200, 200])
    // One bucket: what A took, B sees gone.
    expect(taken.map((h) => h.remaining)).toEqual(['3', '2', '1', '0'])
    expect(await hit(a, '/api/v1/shared/byip/x', ip)).toMatchObject({ status: 429, limit: '4' })
    expect(await hit(b, '/api/v1/shared/byip/x', ip)).toMatchObject({ status: 429, limit: '4' })
    // All at once on both: still exactly 4 (each decision atomic in Redis).
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => hit(i % 2 === 0 ? a : b, '/api/v1/shared/byip/x', '192.0.2.2')))
    expect(burst.filter((h) => h.status === 200)).toHaveLength(4)
    expect(burst.filter((h) => h.status === 429)).toHaveLength(16)
  })

  test('key subject: a route bucket of burst 4 is shared exactly: 4 requests of one sub in total across both gateways and addresses, then 429 on both', async () => {
    const frank = await token('frank-1')
    const taken: Hit[] = []
    for (const [i, gw] of [a, b, a, b].entries()) taken.push(await hit(gw, '/api/v1/shared_sub/bysub/x', `192.0.2.${10 + i}`, frank))
    expect(taken.map((h) => h.status)).toEqual([200, 200, 200, 200])
    expect(taken.map((h) => h.remaining)).toEqual(['3', '2', '1', '0'])
    expect(await hit(a, '/api/v1/shared_sub/bysub/x', '192.0.2.20', frank)).toMatchObject({ status: 429, limit: '4' })
    expect(await hit(b, '/api/v1/shared_sub/bysub/x', '192.0.2.21', frank)).toMatchObject({ status: 429, limit: '4' })
    const grace = await token('grace-1')
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => hit(i % 2 === 0 ? a : b, '/api/v1/shared_sub/bysub/x', `192.0.2.${30 + i}`, grace)))
    expect(burst.filter((h) => h.status === 200)).toHaveLength(4)
    expect(burst.filter((h) => h.status === 429)).toHaveLength(16)
  })

  test('a reload of both keeps the shared bucket\'s tokens, capped at the new burst: 3 of 10 spent, burst 5 → exactly 5 more across both', async () => {
    const ip = '192.0.2.100'
    const before = [await hit(a, '/api/v1/shared/reload/x', ip), await hit(b, '/api/v1/shared/reload/x', ip), await hit(a, '/api/v1/shared/reload/x', ip)]
    expect(before.map((h) => [h.status, h.limit, h.remaining])).toEqual([
      [200, '10', '9'],
      [200, '10', '8'],
      [200, '10', '7'],
    ])
    rewrite(file, documentWith(5))
    await Promise.all([reloadAndWait(a, 1), reloadAndWait(b, 1)])
    const after: Hit[] = []
    for (const gw of [b, a, b, a, b, a, b]) after.push(await hit(gw, '/api/v1/shared/reload/x', ip))
    expect(after.map((h) => h.status)).toEqual([200, 200, 200, 200, 200, 429, 429])
    expect(after.map((h) => h.limit)).toEqual(Array(7).fill('5'))
    expect(after.slice(0, 5).map((h) => h.remaining)).toEqual(['4', '3', '2', '1', '0'])
  })
})

describe('reload: each bucket keeps its tokens, capped at its new burst', () => {
  let gw: GatewayProcess
  let file: string
  const documentWith = (burst: number) => ({
    services: { metered: { url: backend.url, routes: [{ path: '/r', rate_limit: { rate: 1, burst } }] } },
  })

  beforeAll(async () => {
    file = policyFile(documentWith(10))
    gw = await startGatewayProcess({ GATEWAY_CONFIG: file, RATE_LIMIT: '1', RATE_LIMIT_BURST: '100', TRUST_PROXY: '127.0.0.1' })
  }, 20_000)

  afterAll(async () => {
    await gw?.kill()
  })

  test('3 of burst 10 spent, a reload to burst 5: exactly 5 more (7 left, capped to 5); a bucket with 2 left keeps its 2; a raise to 20 refills nothing', async () => {
    const spent3 = await hits(3, gw, '/api/v1/metered/r/x', '198.18.1.1')
    expect(spent3.map((h) => [h.status, h.limit, h.remaining])).toEqual([
      [200, '10', '9'],
      [200, '10', '8'],
      [200, '10', '7'],
    ])
    const spent8 = await hits(8, gw, '/api/v1/metered/r/x', '198.18.1.2')
    expect(spent8.at(-1)).toMatchObject({ status: 200, remaining: '2' })

    rewrite(file, documentWith(5))
    await reloadAndWait(gw, 1)
    const capped = await hits(6, gw, '/api/v1/metered/r/x', '198.18.1.1')
    expect(capped.map((h) => h.status)).toEqual([200, 200, 200, 200, 200, 429])
    expect(capped.map((h) => h.limit)).toEqual(Array(6).fill('5'))
    expect(capped.slice(0, 5).map((h) => h.remaining)).toEqual(['4', '3', '2', '1', '0'])
    // Under the new cap already: kept as it was, not filled to 5.
    const kept = await hits(3, gw, '/api/v1/metered/r/x', '198.18.1.2')
    expect(kept.map((h) => h.status)).toEqual([200, 200, 429])
    // A new client starts full at the new burst.
    expect(await hit(gw, '/api/v1/metered/r/x', '198.18.1.3')).toMatchObject({ status: 200, limit: '5', remaining: '4' })

    rewrite(file, documentWith(20))
    await reloadAndWait(gw, 2)
    // Empty stays empty: a higher burst is room to refill into, not tokens.
    expect(await hit(gw, '/api/v1/metered/r/x', '198.18.1.1')).toMatchObject({ status: 429, limit: '20' })
    expect(await hit(gw, '/api/v1/metered/r/x', '198.18.1.2')).toMatchObject({ status: 429, limit: '20' })
    // 4 left of 5 stays 4 of 20.
    expect(await hit(gw, '/api/v1/metered/r/x', '198.18.1.3')).toMatchObject({ status: 200, limit: '20', remaining: '3' })
    expect(gw.logs.filter((l) => l.msg === 'Configuration reloaded').map((l) => l.changed)).toEqual([['metered'], ['metered']])
  })
})
