import { describe, expect, test } from 'bun:test'
import { DEFAULT_MAX_TRACKED, TokenBucketLimiter } from '../../src/ratelimit/token-bucket'

function clock(start = 0) {
  const state = { now: start }
  return { state, now: () => state.now }
}

describe('token bucket', () => {
  test('a full bucket allows exactly its capacity, then refuses', () => {
    const { now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 3, perMinute: 60, now })
    expect([1, 2, 3, 4].map(() => limiter.take('a').allowed)).toEqual([true, true, true, false])
  })

  test('remaining counts whole tokens; reset is seconds until full; retry-after until one token', () => {
    const { state, now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 3, perMinute: 60, now }) // one token per second
    expect(limiter.take('a')).toMatchObject({ allowed: true, limit: 3, remaining: 2, resetSeconds: 1 })
    limiter.take('a')
    expect(limiter.take('a')).toMatchObject({ remaining: 0, resetSeconds: 3 })
    state.now += 400
    const refused = limiter.take('a')
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterSeconds).toBe(1)
  })

  test('tokens refill continuously at RATE_LIMIT per minute', () => {
    const { state, now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 2, perMinute: 30, now }) // one token per 2 s
    limiter.take('a')
    limiter.take('a')
    expect(limiter.take('a').allowed).toBe(false)
    state.now += 1_000
    expect(limiter.take('a').allowed).toBe(false)
    state.now += 1_000
    expect(limiter.take('a').allowed).toBe(true)
  })

  test('Retry-After is at least one second and counts the whole wait', () => {
    const { now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 1, perMinute: 6, now }) // one token per 10 s
    limiter.take('a')
    expect(limiter.take('a').retryAfterSeconds).toBe(10)
  })

  test('keys have separate buckets', () => {
    const { now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 1, perMinute: 60, now })
    expect(limiter.take('a').allowed).toBe(true)
    expect(limiter.take('a').allowed).toBe(false)
    expect(limiter.take('b').allowed).toBe(true)
  })
})

describe('bounded memory', () => {
  test('buckets that refilled to full are swept', () => {
    const { state, now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 10, perMinute: 600, now })
    for (let i = 0; i < 100; i++) for (let t = 0; t < 10; t++) limiter.take(`10.0.0.${i}`) // empty: full again after 1 s
    expect(limiter.size).toBe(100)
    state.now += 500
    limiter.sweep()
    expect(limiter.size).toBe(100)
    state.now += 1_000
    limiter.sweep()
    expect(limiter.size).toBe(0)
  })

  test('200,000 distinct addresses never grow the map past its cap', () => {
    const { state, now } = clock()
    const limiter = new TokenBucketLimiter({ capacity: 100, perMinute: 100, now })
    let largest = 0
    for (let i = 0; i < 200_000; i++) {
      limiter.take(`2001:db8::${i.toString(16)}`)
      state.now += 0.01
      if (limiter.size > largest) largest = limiter.size
    }
    expect(largest).toBeLessThanOrEqual(DEFAULT_MAX_TRACKED)
    expect(limiter.size).toBeLessThanOrEqual(DEFAULT_MAX_TRACKED)
    // The most recent addresses are still limited: eviction drops the oldest first.
    for (let i = 0; i < 100; i++) limiter.take('2001:db8::30d3f')
    expect(limiter.take('2001:db8::30d3f').allowed).toBe(false)
  })
})
