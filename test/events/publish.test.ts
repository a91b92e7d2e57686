import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { openStream, publish } from '../helpers/sse-client'

let gw: RunningGateway
beforeAll(async () => {
  gw = await startGateway({ RATE_LIMIT: '0' })
})
afterAll(() => gw.stop())

describe('publish', () => {
  test('202 with the event id and the number of streams it was queued to', async () => {
    const offline = await publish(gw.url, 'nobody-home', { event_type: 'run.started', data: { run: 1 } })
    expect(offline.status).toBe(202)
    expect(offline.body).toEqual({ id: expect.any(String), delivered: 0 })
    const tabs = await Promise.all([1, 2].map(() => openStream(`${gw.url}/api/v1/events/two-tabs`)))
    await Promise.all(tabs.map((t) => t.waitFor((e) => e.event === 'connection.established')))
    const online = await publish(gw.url, 'two-tabs', { event_type: 'run.started', data: {} })
    expect(online.body.delivered).toBe(2)
    for (const tab of tabs) tab.close()
  })

  test('an explicit id already retained is a no-op (idempotent retries)', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/retry-client`)
    await stream.waitFor((e) => e.event === 'connection.established')
    const first = await publish(gw.url, 'retry-client', { event_type: 'step', data: { n: 1 }, id: 'evt-42' })
    const again = await publish(gw.url, 'retry-client', { event_type: 'step', data: { n: 1 }, id: 'evt-42' })
    expect(first.body).toEqual({ id: 'evt-42', delivered: 1 })
    expect(again.status).toBe(202)
    expect(again.body).toEqual({ id: 'evt-42', delivered: 0 })
    await publish(gw.url, 'retry-client', { event_type: 'marker', data: {} })
    await stream.waitFor((e) => e.event === 'marker')
    expect(stream.events.filter((e) => e.id === 'evt-42')).toHaveLength(1)
    stream.close()
  })

  test('broadcast to named clients, and to every connected client', async () => {
    const [a, b, c] = await Promise.all(['bc-a', 'bc-b', 'bc-c'].map((id) => openStream(`${gw.url}/api/v1/events/${id}`)))
    await Promise.all([a!, b!, c!].map((s) => s.waitFor((e) => e.event === 'connection.established')))
    const named = await publish(gw.url, null, { event_type: 'notice', data: { to: 'some' }, client_ids: ['bc-a', 'bc-b', 'bc-offline'] })
    expect(named.body.delivered).toBe(2)
    await a!.waitFor((e) => e.event === 'notice')
    await b!.waitFor((e) => e.event === 'notice')
    const everyone = await publish(gw.url, null, { event_type: 'maintenance', data: {} })
    expect(everyone.body.delivered).toBeGreaterThanOrEqual(3)
    for (const s of [a!, b!, c!]) await s.waitFor((e) => e.event === 'maintenance')
    expect(c!.events.some((e) => e.event === 'notice')).toBe(false)
    // The offline named client retains it for replay.
    const replayed = await openStream(`${gw.url}/api/v1/events/bc-offline?lastEventId=0`)
    expect((await replayed.waitFor((e) => e.event === 'notice')).id).toBe(named.body.id)
    for (const s of [a!, b!, c!, replayed]) s.close()
  })

  test('metrics count published and delivered events', async () => {
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/gateway_sse_events_published_total [1-9]/)
    expect(metrics).toMatch(/gateway_sse_events_delivered_total [1-9]/)
  })
})

describe('bad publishes get a JSON error', () => {
  const cases: [string, unknown, number][] = [
    ['event_type missing', { data: {} }, 400],
    ['event_type with a space', { event_type: 'run progress', data: {} }, 400],
    ['event_type of 65 characters', { event_type: 'x'.repeat(65), data: {} }, 400],
    ['reserved connection.established', { event_type: 'connection.established', data: {} }, 400],
    ['reserved heartbeat', { event_type: 'heartbeat', data: {} }, 400],
    ['reserved replay.gap', { event_type: 'replay.gap', data: {} }, 400],
    ['id with a newline', { event_type: 'x', data: {}, id: 'a\nid: b' }, 400],
    ['question without question_id', { event_type: 'question', data: { text: '?' } }, 400],
    ['question_id of 129 characters', { event_type: 'question', data: { question_id: 'q'.repeat(129) } }, 400],
    ['question_id .', { event_type: 'question', data: { question_id: '.' } }, 400],
    ['question_id ..', { event_type: 'question', data: { question_id: '..' } }, 400],
    ['question_id with a slash', { event_type: 'question', data: { question_id: '../admin' } }, 400],
    ['question_id with a space', { event_type: 'question', data: { question_id: 'q 1' } }, 400],
    ['question with a bad expires_at', { event_type: 'question', data: { question_id: 'q', expires_at: 'tomorrow' } }, 400],
    ['an array instead of an object', [{ event_type: 'x' }], 400],
    ['an event over 64 KiB', { event_type: 'big', data: 'x'.repeat(64 * 1024) }, 413],
  ]
  for (const [name, body, status] of cases) {
    test(`${name} → ${status}`, async () => {
      const response = await publish(gw.url, 'victim', body)
      expect(response.status).toBe(status)
      expect(response.body).toMatchObject({ error: status === 413 ? 'payload_too_large' : 'bad_request', request_id: expect.any(String) })
    })
  }

  test('a body that is not JSON → 400', async () => {
    const response = await fetch(`${gw.url}/api/v1/events/victim`, { method: 'POST', body: 'event_type=x' })
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe('bad_request')
  })

  test('broadcast client_ids that are not a list of client ids → 400', async () => {
    for (const clientIds of ['bc-a', [1, 2], ['ok', 'bad id']]) {
      const response = await publish(gw.url, null, { event_type: 'x', data: {}, client_ids: clientIds })
      expect(response.status).toBe(400)
    }
  })

  test('a declared Content-Length over 64 KiB is refused before reading', async () => {
    const response = await fetch(`${gw.url}/api/v1/events/victim`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event_type: 'x', data: 'y'.repeat(70_000) }) })
    expect(response.status).toBe(413)
  })
})

describe('who may publish', () => {
  test('without PUBLISH_TOKEN, only a backend on this host may publish: the loopback peer itself', async () => {
    const local = await publish(gw.url, 'someone', { event_type: 'x', data: {} })
    expect(local.status).toBe(202)
  })

  test('without PUBLISH_TOKEN, a loopback peer that forwards for someone else gets 403, trusted or not, whatever its X-Forwarded-For says', async () => {
    const proxied = await startGateway({ TRUST_PROXY: '127.0.0.1' })
    try {
      // Behind a trusted proxy on this host, a missing or garbage right-most address once fell back to the loopback peer.
      for (const headers of [{}, { 'x-forwarded-for': '203.0.113.5' }, { 'x-forwarded-for': 'garbage' }, { 'x-forwarded-for': '203.0.113.5, not-an-ip' }, { 'x-forwarded-for': '127.0.0.1' }] as Record<string, string>[]) {
        const refused = await publish(proxied.url, 'someone', { event_type: 'x', data: {} }, headers)
        expect(refused.status).toBe(403)
        expect(refused.body.error).toBe('forbidden')
      }
      // Not trusted, but forwarding for a client elsewhere (a proxy on this host that is not in TRUST_PROXY).
      // X-Real-IP too: a local nginx often sets only that one.
      for (const headers of [{ 'x-forwarded-for': '203.0.113.5' }, { forwarded: 'for=203.0.113.5' }, { 'x-real-ip': '203.0.113.5' }] as Record<string, string>[]) {
        const refused = await publish(gw.url, 'someone', { event_type: 'x', data: {} }, headers)
        expect(refused.status).toBe(403)
        expect(refused.body.message).toContain('PUBLISH_TOKEN')
      }
    } finally {
      await proxied.stop()
    }
  })

  test('with PUBLISH_TOKEN: a missing or wrong bearer token is 401, the right one publishes from anywhere', async () => {
    const guarded = await startGateway({ PUBLISH_TOKEN: 's3cret-token', TRUST_PROXY: '127.0.0.1' })
    try {
      const missing = await publish(guarded.url, 'someone', { event_type: 'x', data: {} })
      expect(missing.status).toBe(401)
      expect(missing.headers.get('www-authenticate')).toBe('Bearer')
      expect(missing.body.error).toBe('unauthorized')
      const wrong = await publish(guarded.url, 'someone', { event_type: 'x', data: {} }, { authorization: 'Bearer nope' })
      expect(wrong.status).toBe(401)
      const right = await publish(guarded.url, 'someone', { event_type: 'x', data: {} }, { authorization: 'Bearer s3cret-token', 'x-forwarded-for': '203.0.113.5' })
      expect(right.status).toBe(202)
    } finally {
      await guarded.stop()
    }
  })

  test('authenticated publishers are not rate limited; everyone else is', async () => {
    const limited = await startGateway({ PUBLISH_TOKEN: 'tok', RATE_LIMIT: '60', RATE_LIMIT_BURST: '2' })
    try {
      for (let i = 0; i < 10; i++) {
        const response = await publish(limited.url, 'someone', { event_type: 'x', data: { i } }, { authorization: 'Bearer tok' })
        expect(response.status).toBe(202)
        expect(response.headers.has('ratelimit-limit')).toBe(false)
      }
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((await publish(limited.url, 'someone', { event_type: 'x', data: {} }, { authorization: 'Bearer wrong' })).status)
      expect(statuses).toEqual([401, 401, 429])
    } finally {
      await limited.stop()
    }
  })
})
