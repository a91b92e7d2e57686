/**
 * One request, start to end, as ordered steps over one `RequestContext` (README, "Design notes"),
 * in the spirit of Pingora's phases:
 *
 *   identify → preflight → rate limit → authenticate → route → handle → respond → record
 *
 * A step either lets the request go on, answers it (a preflight), or throws (a refusal); every
 * throw becomes a JSON error in one place (`failureResponse`). `respond` and `record` run for
 * every request, early exits included. The handle step sends proxied requests straight to the
 * proxy, and the gateway's own routes (ops, events) to the Elysia app.
 */
import type { Server } from 'bun'
import type { Config } from '../config'
import type { CorsPolicy } from '../http/cors'
import { GatewayError } from '../http/errors'
import type { PublisherAuth } from '../events/publisher-auth'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import { proxyRequest } from '../proxy/handler'
import type { RateLimiter } from '../ratelimit/token-bucket'
import type { Upstreams } from '../upstream/upstream'
import type { AccessLog } from './access-log'
import { authenticate } from './authenticate'
import { type RequestContext, attachContext, detachContext } from './context'
import { identify } from './identify'
import { preflight } from './preflight'
import { rateLimit } from './rate-limit'
import { record } from './record'
import { failureResponse, respond } from './respond'
import { route } from './route'

/** What the steps work with. */
export interface PipelineParts {
  config: Config
  cors: CorsPolicy
  limiter: RateLimiter | null
  publisherAuth: PublisherAuth
  upstreams: Upstreams
  metrics: Metrics
  accessLog: AccessLog
  logger: Logger
  /** The Elysia app's request handler, for the ops and event routes. */
  app: (request: Request) => Promise<Response>
}

export class Pipeline {
  private readonly trustProxy: Config['trustProxy']
  private readonly maxBodyBytes: number

  constructor(private readonly parts: PipelineParts) {
    this.trustProxy = parts.config.trustProxy
    this.maxBodyBytes = parts.config.maxBodyBytes
  }

  /**
   * Answers one request; never throws.
   * @example Bun.serve({ fetch: (request, server) => pipeline.handle(request, server) })
   */
  async handle(request: Request, server?: Server<unknown>): Promise<Response> {
    const parts = this.parts
    const ctx = identify(request, server, { trustProxy: this.trustProxy, publisherAuth: parts.publisherAuth })
    let response: Response
    try {
      response = preflight(ctx, parts.cors) ?? (await this.proceed(ctx))
    } catch (error) {
      response = failureResponse(ctx, error, parts.logger)
    }
    respond(ctx, response, parts.cors)
    record(ctx, response.status, parts)
    return response
  }

  /** Rate limit → the rest; a shared (Redis) limiter's decision is the only one waited for. */
  private proceed(ctx: RequestContext): Promise<Response> {
    const limited = rateLimit(ctx, this.parts.limiter)
    return limited === undefined ? this.afterRateLimit(ctx) : limited.then(() => this.afterRateLimit(ctx))
  }

  /** Authenticate → route → handle. */
  private afterRateLimit(ctx: RequestContext): Promise<Response> {
    const parts = this.parts
    authenticate(ctx, parts.publisherAuth)
    route(ctx, parts.upstreams, this.maxBodyBytes)
    switch (ctx.kind) {
      case 'proxy':
        return proxyRequest(ctx)
      case 'ops':
      case 'events':
        return this.answerWithApp(ctx)
      case 'not_found':
        throw new GatewayError('not_found', `no route for ${ctx.method} ${ctx.path}`)
    }
  }

  /** The Elysia app answers with the context attached to the request (routes read it as `ctx`). */
  private async answerWithApp(ctx: RequestContext): Promise<Response> {
    attachContext(ctx)
    try {
      return await this.parts.app(ctx.request)
    } finally {
      detachContext(ctx)
    }
  }
}
