/** The shared token bucket against a real redis-server: one budget for every limiter, local buckets while Redis cannot answer. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisLink } from '../../src/cluster/redis-link'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { RedisTokenBucketLimiter } from '../../src/ratelimit/redis-token-bucket'
import { TokenBucketLimiter } from '../../src/ratelimit/token-bucket'
import { type TestRedis, startRedis } from '../helpers/redis'
import { waitFor } from '../helpers/wait'

let redis: TestRedis
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})

async function limiter(prefix: string) {
  const link = new RedisLink({ url: redis.url, logger: createLogger('silent'), metrics: new Metrics(), checkIntervalMs: 100 })
  link.start()
  expect(await waitFor(() => link.isUp, 10_000)).toBe(true)
  const fallback = new TokenBucketLimiter({ capacity: 3, perMinute: 1 })
  return { link, fallback, shared: new RedisTokenBucketLimiter({ link, keyPrefix: `${prefix}rate:`, capacity: 3, perMinute: 1, fallback }) }
}

describe('the shared token bucket', () => {
  test('two limiters on one Redis share one budget per key, with the same decision fields as the local bucket', async () => {
    const [a, b] = [await limiter('shared:'), await limiter('shared:')]
    const decisions = [await a.shared.take('203.0.113.9'), await b.shared.take('203.0.113.9'), await a.shared.take('203.0.113.9'), await b.shared.take('203.0.113.9')]
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false])
    expect(decisions.map((d) => d.remaining)).toEqual([2, 1, 0, 0])
    expect(decisions[3]!.limit).toBe(3)
    expect(decisions[3]!.retryAfterSeconds).toBeGreaterThanOrEqual(59)
    expect(decisions[3]!.retryAfterSeconds).toBeLessThanOrEqual(60)
    expect((await a.shared.take('198.51.100.1')).remaining).toBe(2)
    // The local buckets were never used.
    expect(a.fallback.size + b.fallback.size).toBe(0)
    // A key expires once its bucket would be full again (3 tokens at 1 per minute: within 3 minutes).
    const ttl = Number(await redis.cli('PTTL', 'shared:rate:203.0.113.9'))
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(180_001)
    a.link.close()
    b.link.close()
  })

  test('a frozen Redis: the decision falls back to the local bucket after a short wait, never the command deadline', async () => {
    const { link, fallback, shared } = await limiter('frozen:')
    redis.pause()
    try {
      const started = performance.now()
      const decision = await shared.take('192.0.2.7')
      expect(performance.now() - started).toBeLessThan(500)
      expect(decision.allowed).toBe(true)
      expect(fallback.size).toBe(1)
    } finally {
      redis.resume()
      link.close()
    }
  })
})
