/**
 * Cluster mode: two gateway processes sharing one real Redis behave as one gateway.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type GatewayProcess, startGatewayProcess } from '../helpers/gateway-process'
import { type TestRedis, startRedis } from '../helpers/redis'
import { type TestStream, openStream, publish } from '../helpers/sse-client'

let redis: TestRedis
let hitl: MockBackend
let a: GatewayProcess
let b: GatewayProcess

/** Streams the cluster's presence registry counts for `clientId`, summed over instances. */
async function streamsInPresence(clientId: string): Promise<number> {
  const keys = (await redis.cli('--scan', '--pattern', 'gw:streams:*')).split('\n').filter(Boolean)
  let total = 0
  for (const key of keys) total += Number((await redis.cli('HGET', key, clientId)) || 0)
  return total
}

async function waitForPresence(clientId: string, count: number): Promise<void> {
  const giveUpAt = Date.now() + 3_000
  while ((await streamsInPresence(clientId)) !== count) {
    if (Date.now() > giveUpAt) throw new Error(`presence of ${clientId} never reached ${count}`)
    await Bun.sleep(20)
  }
}

async function stream(gateway: GatewayProcess, clientId: string, headers: Record<string, string> = {}): Promise<TestStream> {
  const opened = await openStream(`${gateway.url}/api/v1/events/${clientId}`, headers)
  await opened.waitFor((e) => e.event === 'connection.established')
  return opened
}

function answer(gateway: GatewayProcess, clientId: string, questionId: string) {
  return fetch(`${gateway.url}/api/v1/events/${clientId}/response`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ question_id: questionId, response: 'yes' }),
  })
}

beforeAll(async () => {
  redis = await startRedis()
  hitl = startBackend(async () => {
    await Bun.sleep(100)
    return Response.json({ accepted: true })
  })
  const env = { REDIS_URL: redis.url, HITL_URL: hitl.url, RATE_LIMIT: '0' }
  ;[a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)])
}, 30_000)

afterAll(async () => {
  await Promise.all([a?.kill(), b?.kill()])
  hitl?.stop()
  await redis?.stop()
})

describe('two gateways, one Redis', () => {
  test('an event published through A reaches a stream on B, once', async () => {
    const onB = await stream(b, 'cross-1')
    await waitForPresence('cross-1', 1)
    const published = await publish(a.url, 'cross-1', { event_type: 'run.progress', data: { n: 1 } })
    expect(published.status).toBe(202)
    expect(published.body.delivered).toBe(1)
    await onB.waitFor((e) => e.id === published.body.id)
    await Bun.sleep(200)
    expect(onB.events.filter((e) => e.id === published.body.id)).toHaveLength(1)
    onB.close()
  })

  test('B replays events that were published through A', async () => {
    const ids: string[] = []
    for (let n = 0; n < 3; n++) ids.push((await publish(a.url, 'replay-1', { event_type: 'run.progress', data: { n } })).body.id)
    const after = await stream(b, 'replay-1', { 'last-event-id': ids[0]! })
    await after.waitFor((e) => e.id === ids[2])
    expect(after.events.filter((e) => e.id).map((e) => e.id)).toEqual(ids.slice(1))
    expect(after.events.some((e) => e.event === 'replay.gap')).toBe(false)
    const everything = await stream(b, 'replay-1', { 'last-event-id': '0' })
    await everything.waitFor((e) => e.id === ids[2])
    expect(everything.events.filter((e) => e.id).map((e) => e.id)).toEqual(ids)
    const unknown = await stream(a, 'replay-1', { 'last-event-id': 'not-retained' })
    await unknown.waitFor((e) => e.id === ids[2])
    expect(unknown.events.map((e) => e.event)).toEqual(['connection.established', 'replay.gap', 'run.progress', 'run.progress', 'run.progress'])
    for (const s of [after, everything, unknown]) s.close()
  })

  test('a question delivered by A is answered through B: the hitl service sees exactly one POST', async () => {
    const onA = await stream(a, 'hitl-1')
    const before = hitl.seen.length
    await publish(a.url, 'hitl-1', { event_type: 'question', data: { question_id: 'q1', prompt: 'Deploy?' } })
    await onA.waitFor((e) => e.event === 'question')
    // A new stream on B lists it as pending (it lives in Redis, not in A).
    const onB = await stream(b, 'hitl-1')
    await onB.waitFor((e) => e.event === 'question' && e.data.data.question_id === 'q1')
    const response = await answer(b, 'hitl-1', 'q1')
    expect(response.status).toBe(200)
    expect(hitl.seen.length - before).toBe(1)
    expect(hitl.seen.at(-1)!.headers.get('idempotency-key')).toBe('hitl-1:q1')
    await onA.waitFor((e) => e.event === 'question.answered' && e.data.data.question_id === 'q1')
    expect((await answer(a, 'hitl-1', 'q1')).status).toBe(409)
    onA.close()
    onB.close()
  })

  test('two answers at once on A and B: one succeeds, one gets 409, one POST', async () => {
    await publish(a.url, 'hitl-2', { event_type: 'question', data: { question_id: 'q2' } })
    const before = hitl.seen.length
    const statuses = (await Promise.all([answer(a, 'hitl-2', 'q2'), answer(b, 'hitl-2', 'q2')])).map((r) => r.status)
    expect(statuses.sort()).toEqual([200, 409])
    expect(hitl.seen.length - before).toBe(1)
    expect((await answer(b, 'hitl-2', 'nope')).status).toBe(404)
  })

  test('the same publisher id through A, then B, is retained once', async () => {
    const first = await publish(a.url, 'idem-1', { event_type: 'run.done', id: 'publisher-id-1', data: {} })
    const retry = await publish(b.url, 'idem-1', { event_type: 'run.done', id: 'publisher-id-1', data: {} })
    expect([first.status, retry.status]).toEqual([202, 202])
    expect(retry.body.id).toBe('publisher-id-1')
    const replay = await stream(b, 'idem-1', { 'last-event-id': '0' })
    await replay.waitFor((e) => e.id === 'publisher-id-1')
    await Bun.sleep(100)
    expect(replay.events.filter((e) => e.id === 'publisher-id-1')).toHaveLength(1)
    replay.close()
  })

  test('delivered counts the streams on both instances; the broadcast form reaches clients on either', async () => {
    const streams = [await stream(a, 'count-1'), await stream(b, 'count-1'), await stream(b, 'count-1'), await stream(a, 'count-2')]
    await waitForPresence('count-1', 3)
    await waitForPresence('count-2', 1)
    expect((await publish(b.url, 'count-1', { event_type: 'run.progress', data: {} })).body.delivered).toBe(3)
    const listed = await publish(b.url, null, { event_type: 'run.progress', client_ids: ['count-1', 'count-2'], data: {} })
    expect(listed.body.delivered).toBe(4)
    const everyone = await publish(b.url, null, { event_type: 'notice', data: {} })
    expect(everyone.body.delivered).toBeGreaterThanOrEqual(4)
    for (const s of streams) await s.waitFor((e) => e.id === everyone.body.id)
    for (const s of streams) s.close()
    await waitForPresence('count-1', 0)
    expect((await publish(a.url, 'count-1', { event_type: 'run.progress', data: {} })).body.delivered).toBe(0)
  })

  test('an instance whose heartbeat is older than 30 s no longer counts', async () => {
    const onB = await stream(b, 'stale-1')
    await waitForPresence('stale-1', 1)
    expect((await publish(a.url, 'stale-1', { event_type: 'x', data: {} })).body.delivered).toBe(1)
    // Age every instance's heartbeat past the window, as if they had all died 31 s ago.
    const instances = (await redis.cli('ZRANGE', 'gw:instances', '0', '-1')).split('\n').filter(Boolean)
    const [seconds] = (await redis.cli('TIME')).split('\n')
    for (const id of instances) await redis.cli('ZADD', 'gw:instances', String(Number(seconds) * 1000 - 31_000), id)
    expect((await publish(a.url, 'stale-1', { event_type: 'x', data: {} })).body.delivered).toBe(0)
    expect((await publish(a.url, null, { event_type: 'x', data: {} })).body.delivered).toBe(0)
    onB.close()
  })

  test('every key lives under REDIS_KEY_PREFIX', async () => {
    const keys = (await redis.cli('--scan')).split('\n').filter(Boolean)
    expect(keys.length).toBeGreaterThan(0)
    expect(keys.filter((key) => !key.startsWith('gw:'))).toEqual([])
  })

  test('a restart keeps pending questions and history: they live in Redis', async () => {
    const event = await publish(a.url, 'restart-1', { event_type: 'run.progress', data: {} })
    await publish(a.url, 'restart-1', { event_type: 'question', data: { question_id: 'q-restart' } })
    await a.kill('SIGKILL')
    await a.restart()
    const replay = await stream(a, 'restart-1', { 'last-event-id': '0' })
    await replay.waitFor((e) => e.event === 'question')
    expect(replay.events.filter((e) => e.id).map((e) => e.event)).toEqual(['run.progress', 'question'])
    expect(replay.events[1]!.id).toBe(event.body.id)
    replay.close()
    await a.kill('SIGTERM')
    await a.restart()
    const fresh = await stream(a, 'restart-1')
    await fresh.waitFor((e) => e.event === 'question' && e.data.data.question_id === 'q-restart')
    fresh.close()
    expect((await answer(b, 'restart-1', 'q-restart')).status).toBe(200)
  }, 30_000)
})

describe('one rate-limit budget across the cluster', () => {
  test('RATE_LIMIT_BURST=10: ten requests spread over A and B pass, the eleventh gets 429 on either', async () => {
    const backend = startBackend()
    const env = { REDIS_URL: redis.url, ORCHESTRATOR_URL: backend.url, RATE_LIMIT: '1', RATE_LIMIT_BURST: '10', REDIS_KEY_PREFIX: 'limits:' }
    const [c, d] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)])
    try {
      const statuses: number[] = []
      for (let n = 0; n < 10; n++) statuses.push((await fetch(`${(n % 2 ? c : d).url}/api/v1/orchestrator/x`)).status)
      expect(statuses).toEqual(Array(10).fill(200))
      const [onC, onD] = await Promise.all([fetch(`${c.url}/api/v1/orchestrator/x`), fetch(`${d.url}/api/v1/orchestrator/x`)])
      expect([onC.status, onD.status]).toEqual([429, 429])
      expect(onC.headers.get('ratelimit-limit')).toBe('10')
      expect(onC.headers.get('ratelimit-remaining')).toBe('0')
      expect(Number(onC.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(await redis.cli('--scan', '--pattern', 'limits:limit:*')).toBe('limits:limit:global:127.0.0.1')
    } finally {
      await Promise.all([c.kill(), d.kill()])
      backend.stop()
    }
  }, 30_000)
})
