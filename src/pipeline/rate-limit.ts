/**
 * Step 3: the token bucket that decides (README, "Rate limiting" and "Policies"). A route's own
 * limit, keyed by the client IP, decides here, before authentication, so a flood of bad
 * credentials is cut as cheaply as any other; one keyed by the token's subject is charged after
 * the token is verified (`rateLimitSubject`), and until then the request spends the client IP's
 * bucket of `RATE_LIMIT`. Health, readiness, metrics and publishers presenting `PUBLISH_TOKEN`
 * are exempt; a policy with `rate_limit: off` too.
 */
import { GatewayError } from '../http/errors'
import type { RequestContext } from '../request/context'
import type { RateDecision, RateLimiter } from '../ratelimit/token-bucket'

/**
 * Takes a token from the bucket of the client IP; the decision stays on the context for the
 * `RateLimit-*` headers. Local buckets decide at once; shared (Redis) buckets return a
 * promise, and only then does the step wait.
 * @throws GatewayError `rate_limited` (429 with `Retry-After`) when the bucket is empty.
 */
export function rateLimit(ctx: RequestContext): void | Promise<void> {
  if (!ctx.route.rateLimited || ctx.hasPublishToken) return
  const { policy, limiter } = ctx.active!
  if (policy.rateLimit === null) return
  const byIp = policy.rateLimit.key === 'ip' ? limiter : ctx.table!.global.limiter
  if (byIp === null) return
  return take(ctx, byIp, ctx.clientIp)
}

/**
 * After authentication: the bucket of the token's subject, for a policy keyed by subject (no
 * token: the client IP's, in the same buckets).
 * @throws GatewayError `rate_limited`.
 */
export function rateLimitSubject(ctx: RequestContext): void | Promise<void> {
  const { policy, limiter } = ctx.active!
  if (limiter === null || policy.rateLimit?.key !== 'subject' || !ctx.route.rateLimited) return
  // Subjects and addresses in one set of buckets, kept apart by their prefix.
  const subject = ctx.principal?.subject
  return take(ctx, limiter, subject === undefined ? `ip:${ctx.clientIp}` : `sub:${subject}`)
}

function take(ctx: RequestContext, limiter: RateLimiter, key: string): void | Promise<void> {
  const decision = limiter.take(key)
  if (decision instanceof Promise) return decision.then((shared) => apply(ctx, shared, limiter))
  apply(ctx, decision, limiter)
}

function apply(ctx: RequestContext, decision: RateDecision, limiter: RateLimiter): void {
  // The RateLimit-* headers describe the bucket that decided: the last one taken from.
  ctx.rate = decision
  if (decision.allowed) return
  ctx.answeredEarly = true
  throw new GatewayError('rate_limited', `rate limit of ${limiter.perMinute} requests per minute exceeded`, {
    'retry-after': String(decision.retryAfterSeconds),
  })
}
