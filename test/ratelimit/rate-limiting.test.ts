import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

let backend: MockBackend
beforeAll(() => {
  backend = startBackend()
})
afterAll(() => backend.stop())

async function withGateway(env: Record<string, string>, body: (gw: RunningGateway) => Promise<void>) {
  const gw = await startGateway({ ORCHESTRATOR_URL: backend.url, ...env })
  try {
    await body(gw)
  } finally {
    await gw.stop()
  }
}

describe('rate limiting through the gateway', () => {
  test('every limited response carries RateLimit-*; an empty bucket gives 429 with Retry-After', () =>
    withGateway({ RATE_LIMIT: '60', RATE_LIMIT_BURST: '3' }, async (gw) => {
      const remaining: string[] = []
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${gw.url}/api/v1/orchestrator/x`)
        expect(response.status).toBe(200)
        expect(response.headers.get('ratelimit-limit')).toBe('3')
        remaining.push(response.headers.get('ratelimit-remaining')!)
      }
      expect(remaining).toEqual(['2', '1', '0'])
      const refused = await fetch(`${gw.url}/api/v1/orchestrator/x`)
      expect(refused.status).toBe(429)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(refused.headers.get('ratelimit-remaining')).toBe('0')
      expect(Number(refused.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1)
      expect(await refused.json()).toMatchObject({ error: 'rate_limited', request_id: refused.headers.get('x-request-id') })
      const metrics = await (await fetch(`${gw.url}/metrics`)).text()
      expect(metrics).toContain('gateway_rate_limited_total 1')
    }))

  test('unknown routes are limited too; /health, /ready and /metrics never are', () =>
    withGateway({ RATE_LIMIT: '60', RATE_LIMIT_BURST: '1' }, async (gw) => {
      expect((await fetch(`${gw.url}/nope`)).status).toBe(404)
      expect((await fetch(`${gw.url}/nope`)).status).toBe(429)
      for (let i = 0; i < 5; i++) {
        for (const path of ['/health', '/ready', '/metrics']) {
          const response = await fetch(`${gw.url}${path}`)
          expect(response.status).toBe(200)
          expect(response.headers.has('ratelimit-limit')).toBe(false)
        }
      }
    }))

  test('RATE_LIMIT=0 disables limiting and its headers', () =>
    withGateway({ RATE_LIMIT: '0' }, async (gw) => {
      for (let i = 0; i < 50; i++) {
        const response = await fetch(`${gw.url}/api/v1/orchestrator/x`)
        expect(response.status).toBe(200)
        expect(response.headers.has('ratelimit-limit')).toBe(false)
      }
    }))

  test('without TRUST_PROXY a spoofed X-Forwarded-For changes nothing', () =>
    withGateway({ RATE_LIMIT: '60', RATE_LIMIT_BURST: '2' }, async (gw) => {
      const statuses = []
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${gw.url}/api/v1/orchestrator/x`, { headers: { 'x-forwarded-for': `198.51.100.${i}` } })
        statuses.push(response.status)
      }
      expect(statuses).toEqual([200, 200, 429])
    }))

  test('behind a trusted proxy each forwarded client has its own bucket', () =>
    withGateway({ RATE_LIMIT: '60', RATE_LIMIT_BURST: '1', TRUST_PROXY: '127.0.0.1' }, async (gw) => {
      const as = (ip: string) => fetch(`${gw.url}/api/v1/orchestrator/x`, { headers: { 'x-forwarded-for': ip } })
      expect((await as('198.51.100.1')).status).toBe(200)
      expect((await as('198.51.100.1')).status).toBe(429)
      expect((await as('198.51.100.2')).status).toBe(200)
      // A client cannot pick its bucket by prepending addresses: the right-most untrusted one counts.
      expect((await as('203.0.113.9, 198.51.100.1')).status).toBe(429)
      await Bun.sleep(20)
      expect(gw.logs.filter((l) => l.msg === 'Proxied request').map((l) => l.client_ip)).toContain('198.51.100.2')
    }))
})
