/**
 * Token buckets per key (client IP) in one `Map` (README, "Rate limiting"): capacity `burst`, refilled
 * continuously at `perMinute`. Memory is bounded twice: buckets that have refilled to full are
 * indistinguishable from absent ones and are swept, and a flood of distinct keys cannot grow the
 * map past `maxTracked` (the oldest entries go first).
 */

/** What one request learns from its bucket; also the `RateLimit-*` header values. */
export interface RateDecision {
  allowed: boolean
  /** Bucket capacity (`RateLimit-Limit`). */
  limit: number
  /** Whole tokens left after this request (`RateLimit-Remaining`). */
  remaining: number
  /** Seconds until the bucket is full again (`RateLimit-Reset`). */
  resetSeconds: number
  /** Whole seconds until one token is available; ≥ 1 (`Retry-After`), meaningful when refused. */
  retryAfterSeconds: number
}

/** Something that decides, per key, whether one more request may pass (local or shared buckets). */
export interface RateLimiter {
  /** The refill rate (`RATE_LIMIT`), for the 429 message. */
  readonly perMinute: number
  /** Takes one token from `key`'s bucket; a shared limiter answers asynchronously. */
  take(key: string): RateDecision | Promise<RateDecision>
}

/**
 * The decision and its header values, from the tokens left after taking (or failing to take) one.
 * @example rateDecision(true, 9, 10, 1 / 60_000).remaining // 9
 */
export function rateDecision(allowed: boolean, tokensLeft: number, capacity: number, tokensPerMs: number): RateDecision {
  return {
    allowed,
    limit: capacity,
    remaining: Math.floor(tokensLeft),
    resetSeconds: Math.ceil((capacity - tokensLeft) / tokensPerMs / 1000),
    retryAfterSeconds: Math.max(1, Math.ceil((1 - tokensLeft) / tokensPerMs / 1000)),
  }
}

interface Bucket {
  tokens: number
  /** Monotonic milliseconds of the last refill. */
  refilledAt: number
}

export interface TokenBucketOptions {
  capacity: number
  perMinute: number
  /** Most keys tracked at once. */
  maxTracked?: number
  /** Monotonic clock in milliseconds; injectable for tests. */
  now?: () => number
}

export const DEFAULT_MAX_TRACKED = 100_000
/** Share of the map freed when it is full, so eviction is rare, not per request. */
const EVICTION_SHARE = 0.1

export class TokenBucketLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private capacity: number
  /** The refill rate (`RATE_LIMIT`, or a policy's `rate`). */
  perMinute: number
  private tokensPerMs: number
  private readonly maxTracked: number
  private readonly now: () => number

  constructor(options: TokenBucketOptions) {
    this.capacity = options.capacity
    this.perMinute = options.perMinute
    this.tokensPerMs = options.perMinute / 60_000
    this.maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED
    this.now = options.now ?? (() => performance.now())
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.buckets.size
  }

  /**
   * New capacity and rate for every bucket (a policy reload): each keeps its tokens, capped at
   * the new capacity when it next takes one.
   */
  reconfigure(capacity: number, perMinute: number): void {
    this.capacity = capacity
    this.perMinute = perMinute
    this.tokensPerMs = perMinute / 60_000
  }

  /**
   * Takes one token from `key`'s bucket.
   * @example limiter.take('203.0.113.9').allowed // false once the bucket is empty
   */
  take(key: string): RateDecision {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxTracked) this.makeRoom(now)
      bucket = { tokens: this.capacity, refilledAt: now }
      this.buckets.set(key, bucket)
    } else {
      bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.refilledAt) * this.tokensPerMs)
      bucket.refilledAt = now
    }
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    return rateDecision(allowed, bucket.tokens, this.capacity, this.tokensPerMs)
  }

  /** Drops every bucket that has refilled to full: forgetting it changes no decision. */
  sweep(now = this.now()): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.refilledAt) * this.tokensPerMs >= this.capacity) this.buckets.delete(key)
    }
  }

  private makeRoom(now: number): void {
    this.sweep(now)
    // Still crowded by active keys (a flood of addresses): drop the oldest-inserted ones down to
    // the target, so the O(n) sweep runs at most once per `EVICTION_SHARE × maxTracked` new keys.
    const target = Math.floor(this.maxTracked * (1 - EVICTION_SHARE))
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= target) break
      this.buckets.delete(key)
    }
  }
}
