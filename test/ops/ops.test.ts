import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

describe('health, readiness and metrics', () => {
  let backend: MockBackend
  let gw: RunningGateway
  beforeAll(async () => {
    backend = startBackend()
    gw = await startGateway({ ORCHESTRATOR_URL: backend.url })
  })
  afterAll(async () => {
    await gw.stop()
    backend.stop()
  })

  test('GET /health → 200 with status, service and version', async () => {
    const response = await fetch(`${gw.url}/health`)
    expect(response.status).toBe(200)
    const { version } = await Bun.file(new URL('../../package.json', import.meta.url)).json()
    expect(await response.json()).toMatchObject({ status: 'ok', service: 'api-gateway', version })
  })

  test('GET /ready → 200 while serving', async () => {
    expect((await fetch(`${gw.url}/ready`)).status).toBe(200)
  })

  test('GET /metrics → Prometheus text with the gateway series', async () => {
    await fetch(`${gw.url}/api/v1/orchestrator/m`)
    const response = await fetch(`${gw.url}/metrics`)
    expect(response.headers.get('content-type')).toContain('text/plain')
    const text = await response.text()
    expect(text).toContain('# TYPE gateway_requests_total counter')
    expect(text).toContain('gateway_requests_total{service="orchestrator",method="GET",status="200"} 1')
    expect(text).toContain('# TYPE gateway_request_duration_seconds histogram')
    expect(text).toMatch(/^gateway_request_duration_seconds_count [1-9]/m)
    expect(text).toContain('# TYPE gateway_upstream_errors_total counter')
    expect(text).toContain('# TYPE gateway_rate_limited_total counter')
  })

  test("the gateway's own routes are counted too: ops as gateway, event routes as events", async () => {
    await fetch(`${gw.url}/health`)
    await fetch(`${gw.url}/no/such/route`)
    await fetch(`${gw.url}/api/v1/events/counted`, { method: 'POST', body: JSON.stringify({ event_type: 'x', data: {} }) })
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(text).toMatch(/^gateway_requests_total\{service="gateway",method="GET",status="200"\} [1-9]/m)
    expect(text).toMatch(/^gateway_requests_total\{service="gateway",method="GET",status="404"\} 1$/m)
    expect(text).toMatch(/^gateway_requests_total\{service="events",method="POST",status="202"\} 1$/m)
  })
})

describe('graceful shutdown', () => {
  test('readiness turns 503, new connections are refused, and an in-flight request finishes', async () => {
    const backend = startBackend(async () => {
      await Bun.sleep(600)
      return new Response('finished')
    })
    const gw = await startGateway({ SLOW_URL: backend.url })
    const inFlight = fetch(`${gw.url}/api/v1/slow/x`)
    await Bun.sleep(100)
    const shutdown = gw.gateway.shutdown(5_000)
    expect(gw.gateway.lifecycle.ready).toBe(false)
    // The listener is closed, so ask the app directly, as a request already accepted would.
    const ready = (await gw.gateway.handle(new Request('http://gateway.local/ready')))!
    expect(ready.status).toBe(503)
    expect(await ready.json()).toMatchObject({ error: 'service_unavailable' })
    let refused = false
    try {
      await fetch(`${gw.url}/health`)
    } catch {
      refused = true
    }
    expect(refused).toBe(true)
    const response = await inFlight
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('finished')
    expect(await shutdown).toBe(true)
    backend.stop()
  })

  test('a request that outlives the drain window is cut and shutdown still completes', async () => {
    const backend = startBackend(async (request, server) => {
      server.timeout(request, 0)
      await Bun.sleep(3_000)
      return new Response('too late')
    })
    const gw = await startGateway({ SLOW_URL: backend.url })
    const inFlight = fetch(`${gw.url}/api/v1/slow/x`).then(
      (r) => r.status,
      () => 'cut',
    )
    await Bun.sleep(100)
    const started = performance.now()
    expect(await gw.gateway.shutdown(300)).toBe(false)
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(await inFlight).toBe('cut')
    backend.stop()
  })
})
