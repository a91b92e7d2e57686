/** The Redis broker in-process, against a real redis-server: what the cross-process tests cannot reach. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { joinCluster } from '../../src/cluster/cluster'
import { loadConfig } from '../../src/config'
import { createBroker } from '../../src/events/create-broker'
import { createEnvelope } from '../../src/events/envelope'
import { Hub } from '../../src/events/hub'
import { createLogger } from '../../src/log'
import { Metrics } from '../../src/ops/metrics'
import { type TestRedis, startRedis } from '../helpers/redis'

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
  const broker = createBroker(config, hub, metrics, logger, cluster)
  closers.push(async () => {
    hub.stop()
    await broker.close()
  })
  await cluster.link.waitUntilUp()
  return { hub, broker, cluster }
}

describe('the Redis broker', () => {
  test('a claim whose lease lapsed cannot be settled by its old holder', async () => {
    // UPSTREAM_TIMEOUT_MS=1 makes the lease 10 s; the test ages the claim by rewriting it in Redis instead.
    const first = await instance()
    const second = await instance()
    await first.broker.publish(['lease-1'], createEnvelope('question', { question_id: 'q' }))
    expect(await first.broker.claimAnswer('lease-1', 'q')).toBe('claimed')
    expect(await second.broker.claimAnswer('lease-1', 'q')).toBe('answered')
    // The lease lapses (its holder is stuck): make the stored claim expired.
    const stored = await redis.cli('HGET', 'unit:questions:lease-1', 'q')
    await redis.cli('HSET', 'unit:questions:lease-1', 'q', stored.replace(/^(\d+):(\d+):/, '$1:1:'))
    expect(await second.broker.claimAnswer('lease-1', 'q')).toBe('claimed')
    // The old holder gives up: the new claim stands.
    await first.broker.settleAnswer('lease-1', 'q', false)
    expect(await first.broker.claimAnswer('lease-1', 'q')).toBe('answered')
    await second.broker.settleAnswer('lease-1', 'q', true)
    expect(await first.broker.claimAnswer('lease-1', 'q')).toBe('answered')
    expect(await first.broker.pendingQuestions('lease-1')).toEqual([])
  })

  test('history keeps SSE_HISTORY events; pending questions come oldest first; an expired question is unknown', async () => {
    const { broker } = await instance({ SSE_HISTORY: '3' })
    const events = Array.from({ length: 5 }, (_, n) => createEnvelope('step', { n }))
    for (const event of events) await broker.publish(['history-1'], event)
    expect(await broker.retainedAfter('history-1', '0')).toEqual({ gap: false, events: events.slice(2) })
    expect(await broker.retainedAfter('history-1', events[0]!.id)).toEqual({ gap: true, events: events.slice(2) })
    const questions = [createEnvelope('question', { question_id: 'b' }), createEnvelope('question', { question_id: 'a' })]
    for (const question of questions) await broker.publish(['history-1'], question)
    await broker.publish(['history-1'], createEnvelope('question', { question_id: 'old', expires_at: new Date(Date.now() - 1000).toISOString() }))
    expect(await broker.pendingQuestions('history-1')).toEqual(questions)
    expect(await broker.claimAnswer('history-1', 'old')).toBe('unknown')
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
