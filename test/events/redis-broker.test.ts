/** The Redis broker in-process, against a real redis-server: what the cross-process tests cannot reach. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { joinCluster } from '../../src/cluster/cluster'
import { loadConfig } from '../../src/config/settings'
import { createBroker } from '../../src/events/create-broker'
import { createEnvelope } from '../../src/events/envelope'
import { Hub } from '../../src/events/hub'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import type { Upstream } from '../../src/upstream/upstream'
import { type TestRedis, startRedis } from '../helpers/redis'
import { envelopeOf } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

let redis: TestRedis
const closers: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})
afterAll(async () => {
  await redis.stop()
})

/** One instance: its hub, its Redis link and its broker. */
async function instance(env: Record<string, string> = {}) {
  const config = loadConfig({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'unit:', ...env })
  const metrics = new Metrics()
  const logger = createLogger('silent')
  const hub = new Hub(config.events.heartbeatMs, config.events.buffer, metrics, logger)
  const cluster = joinCluster(config, hub, logger, metrics)!
  const broker = createBroker({ config, hub, metrics, logger, cluster, hitl: () => ({ longestCallMs: 1_000 }) as Upstream })
  closers.push(async () => {
    hub.stop()
    await broker.close()
  })
  expect(await waitFor(() => cluster.link.isUp, 10_000)).toBe(true)
  return { hub, broker, cluster }
}

const questionSpec = (questionId: string) => ({ questionId, required: null, deadline: null, hasDefault: false, defaultResponse: undefined, schema: null })
const answerBy = (clientId: string) => ({ client_id: clientId, subject: null, response: true, answered_at: new Date().toISOString() })

describe('the Redis broker', () => {
  test('a hold whose lease lapsed cannot be settled by its old holder', async () => {
    const first = await instance()
    const second = await instance()
    await first.broker.ask(['lease-1'], questionSpec('q'), createEnvelope('question', { question_id: 'q' }))
    const held = await first.broker.answer('lease-1', 'q', answerBy('lease-1'))
    expect(held.kind).toBe('forward')
    expect((await second.broker.answer('lease-1', 'q', answerBy('lease-1'))).kind).toBe('answered')
    // The lease lapses (its holder is stuck): make the stored hold expired.
    const id = await redis.cli('HGET', 'unit:qidx:lease-1', 'q')
    await redis.cli('HSET', `unit:q:${id}`, 'hold_until', '1')
    const taken = await second.broker.answer('lease-1', 'q', answerBy('lease-1'))
    expect(taken.kind).toBe('forward')
    // The old holder gives up: the new hold stands.
    await first.broker.settle('lease-1', 'q', (held as { hold: string }).hold, false)
    expect((await first.broker.answer('lease-1', 'q', answerBy('lease-1'))).kind).toBe('answered')
    await second.broker.settle('lease-1', 'q', (taken as { hold: string }).hold, true)
    expect((await first.broker.answer('lease-1', 'q', answerBy('lease-1'))).kind).toBe('answered')
    expect(await first.broker.pendingQuestions('lease-1')).toEqual([])
  })

  test('history keeps SSE_HISTORY events; pending questions come oldest first', async () => {
    const { broker } = await instance({ SSE_HISTORY: '3' })
    const events = Array.from({ length: 5 }, (_, n) => createEnvelope('step', { n }))
    for (const event of events) await broker.publish(['history-1'], event)
    const all = await broker.retainedAfter('history-1', '0')
    expect({ gap: all.gap, events: all.events.map(envelopeOf) }).toEqual({ gap: false, events: events.slice(2) })
    const afterGone = await broker.retainedAfter('history-1', events[0]!.id)
    expect({ gap: afterGone.gap, events: afterGone.events.map(envelopeOf) }).toEqual({ gap: true, events: events.slice(2) })
    const questions = [createEnvelope('question', { question_id: 'b' }), createEnvelope('question', { question_id: 'a' })]
    for (const question of questions) await broker.ask(['history-1'], questionSpec((question.data as { question_id: string }).question_id), question)
    expect((await broker.pendingQuestions('history-1')).map(envelopeOf)).toEqual(questions)
  })

  test('replays share frames: reads at once each get the whole history, in turn, the later ones sending only ids for what is held', async () => {
    const { broker } = await instance()
    const events = Array.from({ length: 4 }, (_, n) => createEnvelope('step', { n }))
    for (const event of events) await broker.publish(['shared-1'], event)
    await broker.ask(['shared-1'], questionSpec('sq'), createEnvelope('question', { question_id: 'sq' }))
    const replays = await Promise.all(Array.from({ length: 5 }, () => broker.retainedAfter('shared-1', '0')))
    for (const replay of replays) expect(replay.events.map(envelopeOf).map((e) => e.id)).toEqual([...events.map((e) => e.id), expect.any(String)])
    // The very same bytes in every replay: the streams hold one copy.
    for (const replay of replays.slice(1)) replay.events.forEach((event, i) => expect(event.frame).toBe(replays[0]!.events[i]!.frame))
    const [first, second] = await Promise.all([broker.pendingQuestions('shared-1'), broker.pendingQuestions('shared-1')])
    expect(first!.map(envelopeOf).map((e) => e.data.question_id)).toEqual(['sq'])
    expect(second![0]!.frame).toBe(first![0]!.frame)
    // What comes after a given id is still exact when some of it is held.
    const after = await broker.retainedAfter('shared-1', events[1]!.id)
    expect(after.events.map(envelopeOf).map((e) => e.id)).toEqual([events[2]!.id, events[3]!.id, expect.any(String)])
    expect(after.events[0]!.frame).toBe(replays[0]!.events[2]!.frame)
  })

  test('after a reconnect the presence registry holds only the streams still open', async () => {
    const { hub, cluster } = await instance()
    const connection = hub.open('presence-1', {})
    connection.goLive(new Set())
    const key = `unit:streams:${cluster.presence.instanceId}`
    for (let i = 0; i < 100 && (await redis.cli('HGET', key, 'presence-1')) !== '1'; i++) await Bun.sleep(10)
    expect(await redis.cli('HGET', key, 'presence-1')).toBe('1')
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal')
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub')
    // The link notices, reconnects, and closes its streams so their clients replay.
    for (let i = 0; i < 300 && connection.isOpen; i++) await Bun.sleep(10)
    expect(connection.isOpen).toBe(false)
    await Bun.sleep(200)
    expect(await redis.cli('HGET', key, 'presence-1')).toBe('')
  })
})
