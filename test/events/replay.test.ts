import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { startGatewayProcess } from '../helpers/gateway-process'
import { startRedis } from '../helpers/redis'
import { openStream, publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

/** Resident set size of a process, from /proc. */
function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN) * 1024
}

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

/**
 * Replay amplification: a history of large events, asked for by many streams that never read.
 * Each stream once framed its own copy of the whole history (about 2 MB of the gateway's memory
 * per stream here); now every stream queues the broker's frames, and a client may hold at most
 * SSE_MAX_STREAMS_PER_CLIENT streams on one gateway.
 */
describe('a replay costs memory once per retained event, not once per stream', () => {
  const EVENTS = 100
  const STREAMS = 32
  const event = { event_type: 'report', data: { body: 'x'.repeat(60_000) } }

  /** Opens `count` raw streams for `clientId` asking for everything retained, and never reads them. */
  function idleReplays(port: number, clientId: string, count: number): net.Socket[] {
    return Array.from({ length: count }, () => {
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`GET /api/v1/events/${clientId} HTTP/1.1\r\nHost: gw\r\nLast-Event-ID: 0\r\n\r\n`)
      socket.pause()
      return socket
    })
  }

  async function openStreamsOf(url: string): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text()
    return Number(/^gateway_sse_connections (\d+)/m.exec(text)?.[1] ?? Number.NaN)
  }

  async function measure(env: Record<string, string>): Promise<{ growthBytes: number; outages: number }> {
    const gw = await startGatewayProcess({ RATE_LIMIT: '0', LOG_LEVEL: 'warn', ...env })
    const sockets: net.Socket[] = []
    try {
      for (let i = 0; i < EVENTS; i++) expect((await publish(gw.url, 'alice', event)).status).toBe(202)
      await Bun.sleep(300)
      const before = rssBytes(gw.pid)
      sockets.push(...idleReplays(gw.port, 'alice', STREAMS))
      expect(await waitFor(async () => (await openStreamsOf(gw.url)) === STREAMS, 10_000)).toBe(true)
      // One more than SSE_MAX_STREAMS_PER_CLIENT (32 by default).
      const refused = await fetch(`${gw.url}/api/v1/events/alice`, { headers: { 'last-event-id': '0' } })
      expect(refused.status).toBe(429)
      expect(((await refused.json()) as { error: string }).error).toBe('too_many_streams')
      await Bun.sleep(1_000)
      return { growthBytes: rssBytes(gw.pid) - before, outages: gw.logs.filter((l) => l.msg.startsWith('Redis unreachable')).length }
    } finally {
      for (const socket of sockets) socket.destroy()
      await gw.kill()
    }
  }

  // Framing per stream grew the gateway by 32 × ~2 MB (~67 MB) here; shared frames by a few MB.
  const BOUND_BYTES = 24 * 1024 * 1024

  test('embedded: 32 idle streams replaying 100 events of 60 KB grow the gateway by less than 24 MB; the 33rd gets 429', async () => {
    const { growthBytes } = await measure({})
    expect(growthBytes).toBeLessThan(BOUND_BYTES)
  }, 60_000)

  test('cluster mode: the same, with the history in a real Redis, and Redis not stalled by it', async () => {
    const redis = await startRedis()
    try {
      const { growthBytes, outages } = await measure({ REDIS_URL: redis.url })
      expect(growthBytes).toBeLessThan(BOUND_BYTES)
      // Thirty-two full reads at once once kept Redis from answering the link's PING: every stream was closed.
      expect(outages).toBe(0)
    } finally {
      await redis.stop()
    }
  }, 60_000)
})
