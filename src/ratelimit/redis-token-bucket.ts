/**
 * Shared token buckets for cluster mode (README, "Rate limiting"): one budget per client IP
 * across every gateway on the same Redis. Each decision is one Lua script, atomic in Redis and
 * one round trip (Bun's client pipelines concurrent commands on its one connection). The bucket
 * is the same as the local one (capacity `RATE_LIMIT_BURST`, refilled continuously at
 * `RATE_LIMIT` per minute), timed by Redis's clock, and its key expires once it would be full
 * again, so Redis holds only active clients.
 *
 * While Redis is unreachable, or a decision fails or takes longer than `DECISION_TIMEOUT_MS`,
 * the local buckets decide: proxying never waits on Redis for long, at the cost of each instance
 * granting its own budget during an outage.
 */
import type { RedisLink } from '../cluster/redis-link'
import { RedisScript } from '../cluster/redis-link'
import { type RateDecision, type RateLimiter, type TokenBucketLimiter, rateDecision } from './token-bucket'

/**
 * The same bucket in the GCRA form: one string per key holding the time (Redis clock, ms) at
 * which the bucket will be full again. Tokens left = capacity − (full − now) × rate. Taking a
 * token moves that time one token's worth later; a refusal writes nothing. Against a hash of
 * tokens and last refill, this needs 2 commands instead of 4 and measured about 15% less Redis
 * CPU per decision (BENCHMARKS.md, "Cluster mode").
 *
 * KEYS: 1 bucket. ARGV: 1 capacity, 2 tokens per ms.
 * Returns { allowed (0/1), tokens left as a string } (Lua numbers would be cut to integers).
 */
const TAKE = new RedisScript(`
local capacity, perMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local full = tonumber(redis.call('GET', KEYS[1])) or now
if full < now then full = now end
local tokens = capacity - (full - now) * perMs
if tokens < 1 then return { 0, string.format('%.17g', tokens) } end
full = full + 1 / perMs
redis.call('SET', KEYS[1], string.format('%.17g', full), 'PX', math.ceil(full - now) + 1)
return { 1, string.format('%.17g', tokens - 1) }
`)

/** A shared decision slower than this is abandoned for the local one (a hung Redis costs a request this much, once). */
export const DECISION_TIMEOUT_MS = 100

export interface SharedLimiterOptions {
  link: RedisLink
  prefix: string
  capacity: number
  perMinute: number
  /** Decides while Redis cannot. */
  fallback: TokenBucketLimiter
}

export class RedisTokenBucketLimiter implements RateLimiter {
  readonly perMinute: number
  private readonly capacity: string
  private readonly tokensPerMs: number
  private readonly keyPrefix: string

  constructor(private readonly options: SharedLimiterOptions) {
    this.perMinute = options.perMinute
    this.capacity = String(options.capacity)
    this.tokensPerMs = options.perMinute / 60_000
    this.keyPrefix = `${options.prefix}rate:`
  }

  take(key: string): RateDecision | Promise<RateDecision> {
    if (!this.options.link.isUp) return this.options.fallback.take(key)
    return this.takeShared(key)
  }

  private async takeShared(key: string): Promise<RateDecision> {
    try {
      const [allowed, tokens] = (await this.options.link.eval(TAKE, [this.keyPrefix + key], [this.capacity, String(this.tokensPerMs)], DECISION_TIMEOUT_MS)) as [
        number,
        string,
      ]
      return rateDecision(allowed === 1, Number(tokens), this.options.capacity, this.tokensPerMs)
    } catch {
      return this.options.fallback.take(key)
    }
  }
}
