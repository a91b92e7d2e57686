/**
 * Every rate limit's buckets, by the name of the level that set it (README, "Policies"):
 * `global` for `RATE_LIMIT`, `service:<name>` and `route:<name>:<path>` for a policy file's.
 * A limiter outlives the policy tables that use it, so a reload keeps each bucket's tokens,
 * capped at its new burst; one that no policy names any more is dropped. In cluster mode each
 * limiter is shared through Redis, its local buckets deciding while Redis cannot.
 */
import type { RedisLink } from '../cluster/redis-link'
import type { RateLimitPolicy } from '../config/policies'
import { RedisTokenBucketLimiter } from './redis-token-bucket'
import { type RateLimiter, TokenBucketLimiter } from './token-bucket'

/** How often buckets that refilled to full are forgotten. */
const SWEEP_INTERVAL_MS = 60_000

interface Entry {
  local: TokenBucketLimiter
  shared: RedisTokenBucketLimiter | null
}

export interface SharedBuckets {
  link: RedisLink
  /** `REDIS_KEY_PREFIX`. */
  prefix: string
}

export class Limiters {
  private readonly byBucket = new Map<string, Entry>()
  private readonly sweeper: Timer

  /** @param shared cluster mode's Redis; null: local buckets only. */
  constructor(private readonly shared: SharedBuckets | null) {
    this.sweeper = setInterval(() => {
      for (const entry of this.byBucket.values()) entry.local.sweep()
    }, SWEEP_INTERVAL_MS).unref()
  }

  /**
   * The limiter of `limit`'s buckets: the same object for the same bucket name, reconfigured to
   * the limit's rate and burst.
   * @example limiters.limiterFor({ bucket: 'global', perMinute: 1000, burst: 1000, key: 'ip' }).take('203.0.113.9')
   */
  limiterFor(limit: RateLimitPolicy | null): RateLimiter | null {
    if (limit === null) return null
    let entry = this.byBucket.get(limit.bucket)
    if (entry === undefined) {
      const local = new TokenBucketLimiter({ capacity: limit.burst, perMinute: limit.perMinute })
      entry = { local, shared: this.shared === null ? null : this.sharedLimiter(limit, local) }
      this.byBucket.set(limit.bucket, entry)
    } else {
      // One reconfigures both: the shared limiter passes the change on to its local fallback.
      if (entry.shared !== null) entry.shared.reconfigure(limit.burst, limit.perMinute)
      else entry.local.reconfigure(limit.burst, limit.perMinute)
    }
    return entry.shared ?? entry.local
  }

  /** Forgets the buckets of every name not in `kept` (after a reload swapped the policies). */
  retainOnly(kept: ReadonlySet<string>): void {
    for (const bucket of this.byBucket.keys()) if (!kept.has(bucket)) this.byBucket.delete(bucket)
  }

  close(): void {
    clearInterval(this.sweeper)
  }

  private sharedLimiter(limit: RateLimitPolicy, fallback: TokenBucketLimiter): RedisTokenBucketLimiter {
    const { link, prefix } = this.shared!
    // `<prefix>limit:<bucket>:<key>`, the bucket's name encoded so that no bucket and key can
    // spell another's. A new name, not the `rate:` of the GCRA keys before: during a rolling
    // upgrade old and new gateways keep separate budgets rather than misreading each other's.
    return new RedisTokenBucketLimiter({ link, keyPrefix: `${prefix}limit:${encodeURIComponent(limit.bucket)}:`, capacity: limit.burst, perMinute: limit.perMinute, fallback })
  }
}
