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
 * The same bucket as the local one: one string per key, `<tokens>:<Redis time in ms>` of the
 * last take, refilled on read and capped at the capacity given with each decision, so a policy
 * reload keeps every bucket's tokens, capped at its new burst. Two commands (a GET and a SET),
 * as the GCRA form this replaced, which measured about 15% less Redis CPU than a hash of four
 * (BENCHMARKS.md, "Cluster mode"); a refusal writes nothing. The key expires once the bucket
 * would be full again.
 *
 * KEYS: 1 bucket. ARGV: 1 capacity, 2 tokens per ms.
 * Returns { allowed (0/1), tokens left as a string } (Lua numbers would be cut to integers).
 */
const TAKE = new RedisScript(`
local capacity, perMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local tokens = capacity
local stored = redis.call('GET', KEYS[1])
if stored then
  local left, at = string.match(stored, '^([^:]+):(.+)$')
  if left then tokens = math.min(capacity, tonumber(left) + (now - tonumber(at)) * perMs) end
end
if tokens < 1 then return { 0, string.format('%.17g', tokens) } end
tokens = tokens - 1
redis.call('SET', KEYS[1], string.format('%.17g', tokens) .. ':' .. string.format('%.17g', now), 'PX', math.ceil((capacity - tokens) / perMs) + 1)
return { 1, string.format('%.17g', tokens) }
`)

/** A shared decision slower than this is abandoned for the local one (a hung Redis costs a request this much, once). */
export const DECISION_TIMEOUT_MS = 100

export interface SharedLimiterOptions {
  link: RedisLink
  /** Before every key: `REDIS_KEY_PREFIX` and the buckets' name (`gw:limit:global:`, `gw:limit:route%3Abilling%3A%2Fadmin:`). */
  keyPrefix: string
  capacity: number
  perMinute: number
  /** Decides while Redis cannot. */
  fallback: TokenBucketLimiter
}

export class RedisTokenBucketLimiter implements RateLimiter {
  perMinute: number
  private capacityNumber: number
  private capacity: string
  private tokensPerMs: number
  private readonly keyPrefix: string

  constructor(private readonly options: SharedLimiterOptions) {
    this.perMinute = options.perMinute
    this.capacityNumber = options.capacity
    this.capacity = String(options.capacity)
    this.tokensPerMs = options.perMinute / 60_000
    this.keyPrefix = options.keyPrefix
  }

  /** New capacity and rate (a policy reload), here and in the local fallback; buckets keep their tokens, capped. */
  reconfigure(capacity: number, perMinute: number): void {
    this.perMinute = perMinute
    this.capacityNumber = capacity
    this.capacity = String(capacity)
    this.tokensPerMs = perMinute / 60_000
    this.options.fallback.reconfigure(capacity, perMinute)
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
      return rateDecision(allowed === 1, Number(tokens), this.capacityNumber, this.tokensPerMs)
    } catch {
      return this.options.fallback.take(key)
    }
  }
}
