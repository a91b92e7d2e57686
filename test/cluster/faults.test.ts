/**
 * Cluster mode while Redis goes away and comes back: proxying is untouched, publishing and
 * answering are refused at once, and once Redis returns every event that got a 202 reaches every
 * stream (live or by replay), none twice.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type GatewayProcess, startGatewayProcess } from '../helpers/gateway-process'
import { type TestRedis, startRedis } from '../helpers/redis'
import { type ReceivedEvent, openStream, publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

let redis: TestRedis
let backend: MockBackend
let a: GatewayProcess
let b: GatewayProcess

/** An EventSource-like client: reconnects whenever its stream ends, sending the last id it saw. */
function reconnectingClient(gatewayUrl: string, clientId: string) {
  const received: ReceivedEvent[] = []
  let lastId: string | undefined
  let stopped = false
  let current: { close(): void } | undefined
  let connections = 0
  const loop = (async () => {
    while (!stopped) {
      try {
        const stream = await openStream(`${gatewayUrl}/api/v1/events/${clientId}`, lastId === undefined ? {} : { 'last-event-id': lastId })
        connections++
        current = stream
        let seen = 0
        const takeNew = () => {
          for (; seen < stream.events.length; seen++) {
            const event = stream.events[seen]!
            received.push(event)
            if (event.id !== undefined) lastId = event.id
          }
        }
        const pump = setInterval(takeNew, 5)
        await stream.ended
        clearInterval(pump)
        takeNew()
      } catch {
        // The gateway refused or vanished: try again, as a browser would.
      }
      await Bun.sleep(50)
    }
  })()
  return {
    received,
    get connections() {
      return connections
    },
    ids: () => received.filter((e) => e.id !== undefined).map((e) => e.id!),
    async stop() {
      stopped = true
      current?.close()
      await loop
    },
  }
}

beforeAll(async () => {
  // AOF with appendfsync always: what the README asks for "never lost" to hold across a Redis restart.
  redis = await startRedis({ persistent: true })
  backend = startBackend()
  const env = { REDIS_URL: redis.url, ORCHESTRATOR_URL: backend.url, HITL_URL: backend.url }
  ;[a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)])
}, 30_000)

afterAll(async () => {
  await Promise.all([a?.kill(), b?.kill()])
  backend?.stop()
  await redis?.stop()
})

describe('Redis goes away and comes back', () => {
  test('proxying answers, publishing gets 503 at once; afterwards every accepted event arrives once on both instances', async () => {
    const onA = reconnectingClient(a.url, 'fault-1')
    const onB = reconnectingClient(b.url, 'fault-1')
    await waitFor(() => onA.connections > 0 && onB.connections > 0)
    const accepted: string[] = []
    const publishThrough = async (gateway: GatewayProcess, n: number) => {
      const result = await publish(gateway.url, 'fault-1', { event_type: 'run.progress', data: { n } })
      if (result.status === 202) accepted.push(result.body.id)
      return result
    }
    await publishThrough(a, 0)
    await publishThrough(b, 1)
    await publish(a.url, 'fault-1', { event_type: 'question', data: { question_id: 'q-fault' } })

    await redis.stop()
    // Proxying never depends on Redis; the local buckets keep limiting.
    const proxied = await fetch(`${a.url}/api/v1/orchestrator/during-outage`)
    expect(proxied.status).toBe(200)
    expect(proxied.headers.get('ratelimit-limit')).toBe('1000')
    for (const gateway of [a, b]) {
      const started = performance.now()
      const refused = await publishThrough(gateway, 99)
      expect(refused.status).toBe(503)
      expect(refused.body.error).toBe('service_unavailable')
      expect(performance.now() - started).toBeLessThan(2_000)
    }
    const answerDuringOutage = await fetch(`${b.url}/api/v1/events/fault-1/response`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ question_id: 'q-fault', response: 'yes' }),
    })
    expect(answerDuringOutage.status).toBe(503)
    for (let n = 0; n < 5; n++) expect((await publishThrough(a, 100 + n)).status).toBe(503)
    // A new stream still opens, and says it could not replay.
    const during = await openStream(`${b.url}/api/v1/events/fault-2`, { 'last-event-id': '0' })
    expect(during.response.status).toBe(200)
    const gap = await during.waitFor((e) => e.event === 'replay.gap')
    expect(gap.data.data.last_event_id).toBe('0')
    during.close()
    await Bun.sleep(1_500)

    await redis.start()
    const back = performance.now()
    let recovered = false
    while (performance.now() - back < 5_000) {
      if ((await publishThrough(a, 2)).status === 202) {
        recovered = true
        break
      }
      await Bun.sleep(100)
    }
    expect(recovered).toBe(true)
    await waitFor(() => b.logs.some((line) => line.msg.startsWith('Redis reachable again')), 5_000)
    await publishThrough(b, 3)
    await publishThrough(a, 4)

    for (const client of [onA, onB]) {
      expect(await waitFor(() => accepted.every((id) => client.ids().includes(id)), 8_000)).toBe(true)
    }
    await Bun.sleep(300)
    for (const client of [onA, onB]) {
      // Pending questions are sent again on every new connection by design; events never are.
      const ids = client.received.filter((e) => e.id !== undefined && e.event !== 'question').map((e) => e.id!)
      expect(new Set(ids).size).toBe(ids.length)
      expect(ids.length).toBe(accepted.length)
      // The gateway closed the stream after the outage: the client replayed on a new one.
      expect(client.connections).toBeGreaterThanOrEqual(2)
    }
    // The question published before the outage is still pending and can be answered.
    const later = await fetch(`${b.url}/api/v1/events/fault-1/response`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ question_id: 'q-fault', response: 'yes' }),
    })
    expect(later.status).toBe(200)
    // One line for the outage and one for its end per instance, however many requests it refused.
    for (const gateway of [a, b]) {
      expect(gateway.logs.filter((line) => line.msg.startsWith('Redis unreachable'))).toHaveLength(1)
      expect(gateway.logs.filter((line) => line.msg.startsWith('Redis reachable again'))).toHaveLength(1)
    }
    await Promise.all([onA.stop(), onB.stop()])
  }, 40_000)

  test('a gateway started while Redis is down serves at once, and joins when Redis comes', async () => {
    await redis.stop()
    const late = await startGatewayProcess({ REDIS_URL: redis.url, ORCHESTRATOR_URL: backend.url }, { waitForRedis: false })
    try {
      expect((await fetch(`${late.url}/api/v1/orchestrator/x`)).status).toBe(200)
      expect((await publish(late.url, 'late-1', { event_type: 'x', data: {} })).status).toBe(503)
      const health = (await (await fetch(`${late.url}/health`)).json()) as { redis: string }
      expect(health.redis).toBe('down')
      await redis.start()
      expect(await waitFor(() => late.logs.some((line) => line.msg.startsWith('Redis reachable again')), 5_000)).toBe(true)
      expect((await publish(late.url, 'late-1', { event_type: 'x', data: {} })).status).toBe(202)
    } finally {
      await late.kill()
    }
  }, 30_000)
})
