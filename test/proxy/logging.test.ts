import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

let backend: MockBackend
let gw: RunningGateway

beforeAll(async () => {
  backend = startBackend(() => Response.json({ ok: true }, { status: 201 }))
  gw = await startGateway({ ORCHESTRATOR_URL: `${backend.url}/svc` })
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
