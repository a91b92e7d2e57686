/**
 * Admission: the first step of every request. It names the request (id), finds the client
 * (IP through `TRUST_PROXY`), answers CORS preflights and applies the rate limit (SPEC §5),
 * and hands what it learned to the routes as a `GatewayContext`.
 */
import type { Config } from '../config'
import { TokenBucketLimiter } from '../ratelimit/token-bucket'
import type { Metrics } from '../ops/metrics'
import { canonicalIp } from './client-ip'
import { type GatewayContext, applyAdmissionHeaders, applyGatewayHeaders } from './context'
import { CorsPolicy } from './cors'
import { GatewayError, errorResponse } from './errors'
import { requestIdFor } from './request-id'

/** SPEC §3: health, readiness and metrics are never rate limited. */
const UNLIMITED_PATHS: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics'])

/** How often buckets that refilled to full are forgotten. */
const SWEEP_INTERVAL_MS = 60_000

interface PeerSource {
  requestIP(request: Request): { address: string } | null
}

export class Admission {
  readonly cors: CorsPolicy
  readonly limiter: TokenBucketLimiter | null
  private readonly contexts = new WeakMap<Request, GatewayContext>()
  private readonly sweeper: Timer | undefined

  /**
   * @param isExempt requests that skip the rate limit besides SPEC §3's (authenticated publishers).
   */
  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly isExempt: (request: Request, path: string) => boolean = () => false,
  ) {
    this.cors = new CorsPolicy(config.corsOrigins)
    this.limiter = config.rateLimit > 0 ? new TokenBucketLimiter({ capacity: config.rateLimitBurst, perMinute: config.rateLimit }) : null
    if (this.limiter !== null) {
      const limiter = this.limiter
      this.sweeper = setInterval(() => limiter.sweep(), SWEEP_INTERVAL_MS)
      this.sweeper.unref()
    }
  }

  /**
   * Admits `request`: returns a response when the gateway answers it here (preflight, 429),
   * else what it learned, and the route runs.
   */
  admit(request: Request, server: PeerSource | null): Response | GatewayContext {
    const peerIp = canonicalIp(server?.requestIP(request)?.address ?? '')
    const context: GatewayContext = {
      requestId: requestIdFor(request.headers.get('x-request-id')),
      peerIp,
      clientIp: this.config.trustProxy.clientIp(peerIp, request.headers.get('x-forwarded-for')),
      startedAt: performance.now(),
    }
    const path = pathOf(request.url)
    if (this.limiter !== null && !UNLIMITED_PATHS.has(path) && !this.isExempt(request, path)) {
      context.rate = this.limiter.take(context.clientIp)
      if (!context.rate.allowed) {
        this.metrics.rateLimited.inc()
        this.metrics.observe('gateway', request.method, 429, 0)
        const limited = new GatewayError('rate_limited', `rate limit of ${this.config.rateLimit} requests per minute exceeded`, {
          'retry-after': String(context.rate.retryAfterSeconds),
        })
        return this.refuse(request, context, limited)
      }
    }
    if (CorsPolicy.isPreflight(request)) {
      const answer = this.cors.preflight(request, context.requestId)
      applyAdmissionHeaders(context, answer.headers)
      this.metrics.observe('gateway', 'OPTIONS', answer.status, 0)
      return answer
    }
    return context
  }

  /** Keeps `context` for the routes that look it up by request (the Elysia app), until `forget`. */
  remember(request: Request, context: GatewayContext): void {
    this.contexts.set(request, context)
  }

  /** What admission learned about `request`. */
  contextOf(request: Request): GatewayContext {
    const context = this.contexts.get(request)
    if (context === undefined) throw new Error('request was not admitted')
    return context
  }

  /** Drops what admission kept about `request` once its response exists. */
  forget(request: Request): void {
    this.contexts.delete(request)
  }

  /**
   * The SPEC §2 JSON answer for `error`, with the gateway headers: the one place every route
   * and admission itself turn an error into a response.
   */
  refuse(request: Request, context: GatewayContext, error: GatewayError): Response {
    const answer = errorResponse(error.code, error.message, context.requestId, error.headers)
    applyGatewayHeaders(context, request, this.cors, answer.headers)
    return answer
  }

  /** The gateway headers (`X-Request-Id`, `RateLimit-*`, CORS) added to `headers`. */
  decorate(request: Request, headers: Headers): Headers {
    return applyGatewayHeaders(this.contextOf(request), request, this.cors, headers)
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}

/** The path of an absolute request URL, without the query. */
export function pathOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const query = url.indexOf('?', start)
  return query === -1 ? url.slice(start) : url.slice(start, query)
}
