/**
 * Step 3: the token bucket of the client IP (README, "Rate limiting"), before authentication,
 * so a flood of bad credentials is cut as cheaply as any other. Health, readiness, metrics and
 * publishers presenting `PUBLISH_TOKEN` are exempt.
 */
import { GatewayError } from '../http/errors'
import type { RateDecision, RateLimiter } from '../ratelimit/token-bucket'
import type { RequestContext } from './context'

/**
 * Takes a token; the decision stays on the context for the `RateLimit-*` headers. Local buckets
 * decide at once; shared (Redis) buckets return a promise, and only then does the step wait.
 * @throws GatewayError `rate_limited` (429 with `Retry-After`) when the bucket is empty.
 */
export function rateLimit(ctx: RequestContext, limiter: RateLimiter | null): void | Promise<void> {
  if (limiter === null || ctx.kind === 'ops' || ctx.hasPublishToken) return
  const decision = limiter.take(ctx.clientIp)
  if (decision instanceof Promise) return decision.then((shared) => apply(ctx, shared, limiter))
  apply(ctx, decision, limiter)
}

function apply(ctx: RequestContext, decision: RateDecision, limiter: RateLimiter): void {
  ctx.rate = decision
  if (decision.allowed) return
  ctx.answeredEarly = true
  throw new GatewayError('rate_limited', `rate limit of ${limiter.perMinute} requests per minute exceeded`, {
    'retry-after': String(decision.retryAfterSeconds),
  })
}
