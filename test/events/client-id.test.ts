/**
 * `:client_id` on every event route: percent-decoded, then 1–128 characters of `[A-Za-z0-9._:-]`;
 * one that does not decode (`%zz`) or breaks the rule gets a JSON 400.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { openStream, publish } from '../helpers/sse-client'

let hitl: MockBackend
let gw: RunningGateway

beforeAll(async () => {
  hitl = startBackend()
  gw = await startGateway({ HITL_URL: hitl.url, RATE_LIMIT: '0' })
})

afterAll(async () => {
  await gw.stop()
  hitl.stop()
})

const routes = [
  ['subscribe', 'GET', ''],
  ['publish', 'POST', ''],
  ['answer', 'POST', '/response'],
] as const

const bodies = { GET: undefined, POST: JSON.stringify({ event_type: 'step', question_id: 'q', response: 1 }) }

describe('client ids on every event route', () => {
  for (const [route, method, suffix] of routes) {
    for (const id of ['%zz', 'a%zzb', '%', 'a%2Fb', 'a%20b', 'x'.repeat(129)]) {
      test(`${route}: ${id.length > 20 ? '129 characters' : id} → 400 bad_request`, async () => {
        const response = await fetch(`${gw.url}/api/v1/events/${id}${suffix}`, { method, body: bodies[method] })
        expect(response.status).toBe(400)
        expect(await response.json()).toMatchObject({ error: 'bad_request', request_id: response.headers.get('x-request-id') })
      })
    }
  }

  test('a percent-encoded id that decodes to a valid one is that client', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/al%69ce`)
    const established = await stream.waitFor((e) => e.event === 'connection.established')
    expect(established.data.data.client_id).toBe('alice')
    const published = await publish(gw.url, 'alice', { event_type: 'step', data: { n: 1 } })
    expect(published.body.delivered).toBe(1)
    await stream.waitFor((e) => e.event === 'step')
    stream.close()
  })

  test('nothing is opened or published for a refused id', async () => {
    expect(gw.gateway.hub.connectedClientIds()).not.toContain('null')
    expect((await gw.gateway.broker.retainedAfter('null', '0')).events).toEqual([])
  })
})
