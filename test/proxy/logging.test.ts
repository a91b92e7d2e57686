import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

let backend: MockBackend
let gw: RunningGateway

beforeAll(async () => {
  backend = startBackend(() => Response.json({ ok: true }, { status: 201 }))
  gw = await startGateway({ ORCHESTRATOR_URL: `${backend.url}/svc`, RATE_LIMIT: '600', RATE_LIMIT_BURST: '1000' })
})
afterAll(async () => {
  await gw.stop()
  backend.stop()
})

describe('one JSON log line per proxied request', () => {
  test('carries the documented fields, level as a word', async () => {
    await fetch(`${gw.url}/api/v1/orchestrator/workflows?token=abc`, { method: 'POST', body: '{}', headers: { 'x-request-id': 'log-test-1' } })
    await Bun.sleep(20)
    const lines = gw.logs.filter((l) => l.request_id === 'log-test-1')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'Proxied request',
      method: 'POST',
      service: 'orchestrator',
      target_url: `${backend.url}/svc`,
      path: '/svc/workflows',
      status: 201,
      request_id: 'log-test-1',
      client_ip: '127.0.0.1',
    })
    expect(typeof lines[0]!.duration_ms).toBe('number')
  })

  test('Authorization and Cookie values never reach the log', async () => {
    await fetch(`${gw.url}/api/v1/orchestrator/secret`, {
      headers: { authorization: 'Bearer TOPSECRET-TOKEN', cookie: 'session=COOKIE-SECRET', 'x-request-id': 'log-test-2' },
    })
    await Bun.sleep(20)
    expect(gw.logs.some((l) => l.request_id === 'log-test-2')).toBe(true)
    const everything = gw.rawLogs.join('')
    expect(everything).not.toContain('TOPSECRET-TOKEN')
    expect(everything).not.toContain('COOKIE-SECRET')
  })

  test('failures are logged too, with their kind', async () => {
    await fetch(`${gw.url}/api/v1/unknownsvc/x`, { headers: { 'x-request-id': 'log-test-3' } })
    await Bun.sleep(20)
    expect(gw.logs.find((l) => l.request_id === 'log-test-3')).toMatchObject({ status: 404, service: 'unknown', msg: 'Proxied request' })
  })
})

describe('one line for every request, early exits included', () => {
  test("the gateway's own answers are logged as requests: an event route, a 404, a refused preflight", async () => {
    await fetch(`${gw.url}/api/v1/events/log-client`, { method: 'POST', body: JSON.stringify({ event_type: 'step' }), headers: { 'x-request-id': 'log-test-4' } })
    await fetch(`${gw.url}/nowhere?secret=1`, { headers: { 'x-request-id': 'log-test-5' } })
    await Bun.sleep(20)
    expect(gw.logs.find((l) => l.request_id === 'log-test-4')).toMatchObject({ msg: 'Request', service: 'events', method: 'POST', path: '/api/v1/events/log-client', status: 202 })
    const notFound = gw.logs.find((l) => l.request_id === 'log-test-5')
    expect(notFound).toMatchObject({ msg: 'Request', service: 'gateway', path: '/nowhere', status: 404 })
    // Paths are logged without their query.
    expect(JSON.stringify(notFound)).not.toContain('secret')
  })

  test('health probes are logged at debug only', async () => {
    await fetch(`${gw.url}/health`, { headers: { 'x-request-id': 'log-test-6' } })
    await Bun.sleep(20)
    expect(gw.logs.some((l) => l.request_id === 'log-test-6')).toBe(false)
  })

  test('a rate-limited request gets its line, counted as the gateway answer it is', async () => {
    const limited = await startGateway({ ORCHESTRATOR_URL: backend.url, RATE_LIMIT: '1', RATE_LIMIT_BURST: '1' })
    try {
      await fetch(`${limited.url}/api/v1/orchestrator/a`)
      const refused = await fetch(`${limited.url}/api/v1/orchestrator/a`, { headers: { 'x-request-id': 'log-test-8' } })
      expect(refused.status).toBe(429)
      await Bun.sleep(20)
      expect(limited.logs.find((l) => l.request_id === 'log-test-8')).toMatchObject({ msg: 'Request', service: 'gateway', status: 429 })
      const metrics = await (await fetch(`${limited.url}/metrics`)).text()
      expect(metrics).toMatch(/^gateway_requests_total\{service="gateway",method="GET",status="429"\} 1$/m)
      expect(metrics).toMatch(/^gateway_rate_limited_total 1$/m)
    } finally {
      await limited.stop()
    }
  })
})
