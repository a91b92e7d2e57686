import { describe, expect, test } from 'bun:test'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { openStream, publish } from '../helpers/sse-client'

async function withGateway(env: Record<string, string>, body: (gw: RunningGateway) => Promise<void>) {
  const gw = await startGateway({ RATE_LIMIT: '0', ...env })
  try {
    await body(gw)
  } finally {
    await gw.stop()
  }
}

async function publishMany(gw: RunningGateway, clientId: string, count: number): Promise<string[]> {
  const ids = []
  for (let i = 0; i < count; i++) ids.push((await publish(gw.url, clientId, { event_type: 'step', data: { n: i } })).body.id as string)
  return ids
}

/** Opens a stream and returns the ids of the replayed events (everything up to a marker published after). */
async function replayed(gw: RunningGateway, clientId: string, query = '', headers: Record<string, string> = {}) {
  const stream = await openStream(`${gw.url}/api/v1/events/${clientId}${query}`, headers)
  await stream.waitFor((e) => e.event === 'connection.established')
  await publish(gw.url, clientId, { event_type: 'marker', data: {} })
  await stream.waitFor((e) => e.event === 'marker')
  stream.close()
  return stream.events.filter((e) => e.event !== 'marker' && e.event !== 'heartbeat').map((e) => (e.id === undefined ? e.event : e.id))
}

describe('replay', () => {
  test('events published while the client was offline are replayed with lastEventId=0, in order', () =>
    withGateway({}, async (gw) => {
      const ids = await publishMany(gw, 'offline', 3)
      expect(await replayed(gw, 'offline', '?lastEventId=0')).toEqual(['connection.established', ...ids])
    }))

  test('Last-Event-ID resumes after that event', () =>
    withGateway({}, async (gw) => {
      const ids = await publishMany(gw, 'resume', 4)
      expect(await replayed(gw, 'resume', '', { 'last-event-id': ids[1]! })).toEqual(['connection.established', ids[2]!, ids[3]!])
    }))

  test('the lastEventId query parameter works like the header (for EventSource polyfills and first connects)', () =>
    withGateway({}, async (gw) => {
      const ids = await publishMany(gw, 'query', 3)
      expect(await replayed(gw, 'query', `?lastEventId=${ids[0]}`)).toEqual(['connection.established', ids[1]!, ids[2]!])
    }))

  test('no Last-Event-ID: no replay', () =>
    withGateway({}, async (gw) => {
      await publishMany(gw, 'fresh', 2)
      expect(await replayed(gw, 'fresh')).toEqual(['connection.established'])
    }))

  test('an id no longer retained gives replay.gap first, then everything retained', () =>
    withGateway({ SSE_HISTORY: '2' }, async (gw) => {
      const ids = await publishMany(gw, 'gappy', 4)
      expect(await replayed(gw, 'gappy', '', { 'last-event-id': ids[0]! })).toEqual(['connection.established', 'replay.gap', ids[2]!, ids[3]!])
      expect(await replayed(gw, 'gappy', '', { 'last-event-id': 'never-existed' })).toEqual(expect.arrayContaining(['replay.gap']))
    }))

  test('SSE_HISTORY bounds what is retained per client', () =>
    withGateway({ SSE_HISTORY: '3' }, async (gw) => {
      const ids = await publishMany(gw, 'bounded', 10)
      expect(await replayed(gw, 'bounded', '?lastEventId=0')).toEqual(['connection.established', ...ids.slice(7)])
    }))

  test('SSE_HISTORY_TTL_MS expires retained events', () =>
    withGateway({ SSE_HISTORY_TTL_MS: '1000' }, async (gw) => {
      const [old] = await publishMany(gw, 'aging', 1)
      await Bun.sleep(1_100)
      const [recent] = await publishMany(gw, 'aging', 1)
      expect(await replayed(gw, 'aging', '?lastEventId=0')).toEqual(['connection.established', recent!])
      expect(await replayed(gw, 'aging', '', { 'last-event-id': old! })).toEqual(expect.arrayContaining(['replay.gap']))
    }))

  test('the replay.gap event names the id that was asked for and has no id line', () =>
    withGateway({}, async (gw) => {
      const stream = await openStream(`${gw.url}/api/v1/events/gap-detail`, { 'last-event-id': 'lost-1' })
      const gap = await stream.waitFor((e) => e.event === 'replay.gap')
      expect(gap.id).toBeUndefined()
      expect(gap.data.data).toEqual({ last_event_id: 'lost-1' })
      stream.close()
    }))
})
