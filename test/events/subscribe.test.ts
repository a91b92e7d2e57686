import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { type RunningGateway, openStreams, startGateway } from '../helpers/gateway'
import { waitFor } from '../helpers/wait'
import { openStream, publish } from '../helpers/sse-client'

let gw: RunningGateway
beforeAll(async () => {
  gw = await startGateway({ SSE_HEARTBEAT_MS: '150', RATE_LIMIT: '0' })
})
afterAll(() => gw.stop())

describe('subscribe', () => {
  test('an invalid client id is a 400 JSON error', async () => {
    for (const id of ['x'.repeat(129), 'a%20b', 'semi;colon']) {
      const response = await fetch(`${gw.url}/api/v1/events/${id}`)
      expect(response.status).toBe(400)
      expect((await response.json()).error).toBe('bad_request')
    }
  })

  test('response headers and the connection.established first frame, without an id line', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/headers-client`)
    expect(stream.response.status).toBe(200)
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream')
    expect(stream.response.headers.get('cache-control')).toBe('no-cache')
    expect(stream.response.headers.get('x-accel-buffering')).toBe('no')
    const first = await stream.waitFor(() => true)
    expect(first.event).toBe('connection.established')
    expect(first.id).toBeUndefined()
    expect(first.data.data.client_id).toBe('headers-client')
    expect(stream.events[0]).toBe(first)
    stream.close()
  })

  test('HEAD answers at once with the stream\'s headers and no body, opening no stream', async () => {
    const response = await fetch(`${gw.url}/api/v1/events/head-client`, { method: 'HEAD', signal: AbortSignal.timeout(3_000) })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    expect(response.headers.get('x-request-id')).toBeTruthy()
    expect(await response.text()).toBe('')
    expect(gw.logs.some((l) => l.msg === 'Event stream opened' && l.client_id === 'head-client')).toBe(false)
    // The client id is checked as for GET.
    expect((await fetch(`${gw.url}/api/v1/events/a%20b`, { method: 'HEAD', signal: AbortSignal.timeout(3_000) })).status).toBe(400)
  })

  test('events carry id, event and the envelope as data', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/frames-client`)
    await stream.waitFor((e) => e.event === 'connection.established')
    const { body } = await publish(gw.url, 'frames-client', { event_type: 'run.progress', data: { pct: 40 } })
    const event = await stream.waitFor((e) => e.event === 'run.progress')
    expect(event.id).toBe(body.id)
    expect(event.data).toEqual({ id: body.id, event_type: 'run.progress', timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), data: { pct: 40 } })
    stream.close()
  })

  test('heartbeats arrive every SSE_HEARTBEAT_MS, without an id line', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/beat-client`)
    await stream.waitFor((e) => e.event === 'heartbeat')
    await Bun.sleep(400)
    const beats = stream.events.filter((e) => e.event === 'heartbeat')
    expect(beats.length).toBeGreaterThanOrEqual(2)
    for (const beat of beats) expect(beat.id).toBeUndefined()
    stream.close()
  })

  test('several connections of one client all receive its events', async () => {
    const tabs = await Promise.all([1, 2, 3].map(() => openStream(`${gw.url}/api/v1/events/multi-client`)))
    await Promise.all(tabs.map((tab) => tab.waitFor((e) => e.event === 'connection.established')))
    const { body } = await publish(gw.url, 'multi-client', { event_type: 'run.done', data: {} })
    expect(body.delivered).toBe(3)
    for (const tab of tabs) expect((await tab.waitFor((e) => e.event === 'run.done')).id).toBe(body.id)
    for (const tab of tabs) tab.close()
  })

  test('each stream opened and closed is logged with client id, duration, events sent and why', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/logged-client`)
    await stream.waitFor((e) => e.event === 'connection.established')
    await publish(gw.url, 'logged-client', { event_type: 'one', data: {} })
    await stream.waitFor((e) => e.event === 'one')
    stream.close()
    for (let i = 0; i < 50 && !gw.logs.some((l) => l.msg === 'Event stream closed' && l.client_id === 'logged-client'); i++) await Bun.sleep(10)
    expect(gw.logs.find((l) => l.msg === 'Event stream opened' && l.client_id === 'logged-client')).toBeDefined()
    expect(gw.logs.find((l) => l.msg === 'Event stream closed' && l.client_id === 'logged-client')).toMatchObject({
      duration_ms: expect.any(Number),
      events_sent: 1,
      reason: 'client_closed',
    })
  })
})

describe('cleanup', () => {
  test('1,000 connections opened and dropped leave the hub empty', async () => {
    const before = await openStreams(gw.gateway)
    const sockets: net.Socket[] = []
    for (let i = 0; i < 1_000; i++) {
      const socket = net.connect(gw.port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`GET /api/v1/events/drop-${i % 100} HTTP/1.1\r\nHost: gw\r\n\r\n`)
      sockets.push(socket)
    }
    await waitFor(async () => (await openStreams(gw.gateway)) >= before + 1_000, 5_000)
    expect(await openStreams(gw.gateway)).toBe(before + 1_000)
    for (const socket of sockets) socket.destroy()
    await waitFor(async () => (await openStreams(gw.gateway)) <= before, 5_000)
    expect(await openStreams(gw.gateway)).toBe(before)
    expect(gw.gateway.hub.connectedClientIds().filter((id) => id.startsWith('drop-'))).toEqual([])
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toContain(`gateway_sse_connections ${before}`)
  }, 30_000)

  test('a reader that stops reading is disconnected once SSE_BUFFER events wait; the publisher never waits', async () => {
    const slow = await startGateway({ SSE_BUFFER: '5', RATE_LIMIT: '0' })
    try {
      const socket = net.connect(slow.port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write('GET /api/v1/events/slowpoke HTTP/1.1\r\nHost: gw\r\n\r\n')
      socket.pause() // never reads: the kernel buffers fill, then the gateway's queue
      await waitFor(async () => (await openStreams(slow.gateway)) > 0)
      const payload = 'x'.repeat(60_000)
      let published = 0
      while ((await openStreams(slow.gateway)) > 0 && published < 2_000) {
        const response = await publish(slow.url, 'slowpoke', { event_type: 'bulk', data: { payload } })
        expect(response.status).toBe(202)
        published++
      }
      expect(await openStreams(slow.gateway)).toBe(0)
      expect(published).toBeLessThan(2_000)
      const metrics = await (await fetch(`${slow.url}/metrics`)).text()
      expect(metrics).toContain('gateway_sse_slow_disconnects_total 1')
      expect(slow.logs.find((l) => l.msg === 'Event stream closed')).toMatchObject({ reason: 'slow_consumer' })
      socket.destroy()
    } finally {
      await slow.stop()
    }
  }, 30_000)

  test('shutdown closes every stream so clients reconnect elsewhere', async () => {
    const closing = await startGateway()
    const stream = await openStream(`${closing.url}/api/v1/events/leaving`)
    await stream.waitFor((e) => e.event === 'connection.established')
    await closing.stop()
    await stream.ended
    expect(await openStreams(closing.gateway)).toBe(0)
    expect(closing.logs.find((l) => l.msg === 'Event stream closed')).toMatchObject({ reason: 'shutdown' })
  })
})

describe('a client with several streams', () => {
  test('at most SSE_MAX_STREAMS_PER_CLIENT per client: one more gets 429 too_many_streams; other clients are not affected; a closed one frees a place', async () => {
    const capped = await startGateway({ RATE_LIMIT: '0', SSE_MAX_STREAMS_PER_CLIENT: '3' })
    try {
      const streams = await Promise.all([1, 2, 3].map(() => openStream(`${capped.url}/api/v1/events/greedy`)))
      await Promise.all(streams.map((s) => s.waitFor((e) => e.event === 'connection.established')))
      const refused = await fetch(`${capped.url}/api/v1/events/greedy`)
      expect(refused.status).toBe(429)
      expect(await refused.json()).toMatchObject({ error: 'too_many_streams', request_id: expect.any(String) })
      const other = await openStream(`${capped.url}/api/v1/events/modest`)
      await other.waitFor((e) => e.event === 'connection.established')
      streams[0]!.close()
      await waitFor(async () => (await openStreams(capped.gateway)) === 3)
      const again = await openStream(`${capped.url}/api/v1/events/greedy`)
      expect(again.response.status).toBe(200)
      for (const stream of [...streams.slice(1), other, again]) stream.close()
    } finally {
      await capped.stop()
    }
  })

  test('closing one keeps the others; closing the last frees the client', async () => {
    const gw2 = await startGateway({ RATE_LIMIT: '0' })
    try {
      const first = await openStream(`${gw2.url}/api/v1/events/two`)
      const second = await openStream(`${gw2.url}/api/v1/events/two`)
      await Promise.all([first, second].map((s) => s.waitFor((e) => e.event === 'connection.established')))
      expect(await openStreams(gw2.gateway)).toBe(2)
      first.close()
      await waitFor(async () => (await openStreams(gw2.gateway)) <= 1)
      const { body } = await publish(gw2.url, 'two', { event_type: 'after', data: {} })
      expect(body.delivered).toBe(1)
      expect((await second.waitFor((e) => e.event === 'after')).id).toBe(body.id)
      second.close()
      await waitFor(async () => (await openStreams(gw2.gateway)) === 0)
      expect(gw2.gateway.hub.connectedClientIds()).toEqual([])
    } finally {
      await gw2.stop()
    }
  })
})
