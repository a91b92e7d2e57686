/**
 * One request, start to end, as ordered steps over one `RequestContext` (README, "Design notes"),
 * in the spirit of Pingora's phases:
 *
 *   identify → preflight → rate limit → authenticate → route → handle → respond → record
 *
 * Only the steps that must wait return promises (a shared rate limit, a token not verified
 * before); the others stay synchronous, so the embedded default awaits nothing before the proxy.
 *
 * A step either lets the request go on, answers it (a preflight), or throws (a refusal); every
 * throw becomes a JSON error in one place (`failureResponse`). `record` runs for every request,
 * early exits included, and `respond` for every response handed back; a WebSocket upgrade has
 * none (Bun answers the 101), so the bridge puts the same headers on it (`writeGatewayHeaders`).
 * The handle step sends proxied requests straight to the proxy, and the gateway's own routes
 * (ops, events) to the Elysia app.
 */
import type { Server } from 'bun'
import type { Authenticator } from '../auth/authenticator'
import type { Config } from '../config'
import type { CorsPolicy } from '../http/cors'
import { GatewayError } from '../http/errors'
import type { PublisherAuth } from '../events/publisher-auth'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import { proxyRequest } from '../proxy/handler'
import { type WebSocketBridge, isWebSocketUpgrade } from '../proxy/websocket'
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
  /** Null: authentication is off. */
  authenticator: Authenticator | null
  upstreams: Upstreams
  /** WebSocket upgrades of proxied routes. */
  websockets: WebSocketBridge
  metrics: Metrics
  accessLog: AccessLog
  logger: Logger
  /** The Elysia app's request handler, for the ops and event routes. */
  app: (request: Request) => Promise<Response>
}

export class Pipeline {
  private readonly trustProxy: Config['trustProxy']
  private readonly maxBodyBytes: number
  /** How clients reach the gateway, for `X-Forwarded-Proto`. */
  private readonly scheme: 'http' | 'https'

  constructor(private readonly parts: PipelineParts) {
    this.trustProxy = parts.config.trustProxy
    this.maxBodyBytes = parts.config.maxBodyBytes
    this.scheme = parts.config.tls === null ? 'http' : 'https'
  }

  /**
   * Answers one request; never throws. Resolves with nothing once a WebSocket upgrade has been
   * handed to Bun, which then answers the 101 itself.
   * @example Bun.serve({ fetch: (request, server) => pipeline.handle(request, server) })
   */
  async handle(request: Request, server?: Server<unknown>): Promise<Response | undefined> {
    const parts = this.parts
    const ctx = identify(request, server, { trustProxy: this.trustProxy, publisherAuth: parts.publisherAuth })
    let response: Response | undefined
    try {
      response = preflight(ctx, parts.cors) ?? (await this.proceed(ctx))
    } catch (error) {
      response = failureResponse(ctx, error, parts.logger)
    }
    if (response === undefined) {
      record(ctx, 101, parts)
      return undefined
    }
    respond(ctx, response, parts.cors)
    record(ctx, response.status, parts)
    return response
  }

  /** Rate limit → the rest; a shared (Redis) limiter's decision is the only one waited for. */
  private proceed(ctx: RequestContext): Promise<Response | undefined> {
    const limited = rateLimit(ctx, this.parts.limiter)
    return limited === undefined ? this.afterRateLimit(ctx) : limited.then(() => this.afterRateLimit(ctx))
  }

  /** Authenticate → the rest; a token verified before is accepted without waiting. */
  private afterRateLimit(ctx: RequestContext): Promise<Response | undefined> {
    const parts = this.parts
    const authenticated = authenticate(ctx, parts.publisherAuth, parts.authenticator)
    return authenticated === undefined ? this.afterAuthenticate(ctx) : authenticated.then(() => this.afterAuthenticate(ctx))
  }

  /** Route → handle. */
  private afterAuthenticate(ctx: RequestContext): Promise<Response | undefined> {
    const parts = this.parts
    route(ctx, parts.upstreams, this.maxBodyBytes)
    switch (ctx.kind) {
      case 'proxy':
        return isWebSocketUpgrade(ctx) ? parts.websockets.upgrade(ctx, this.scheme) : proxyRequest(ctx, this.scheme)
      case 'ops':
      case 'events':
        return this.answerWithApp(ctx)
      case 'not_found':
        throw new GatewayError('not_found', `no route for ${ctx.method} ${ctx.path}`)
    }
  }

  /** The Elysia app answers with the context attached to the request (routes read it as `ctx`). */
  private async answerWithApp(ctx: RequestContext): Promise<Response> {
    const request = this.scheme === 'https' ? withHttpUrl(ctx) : ctx.request
    attachContext(request, ctx)
    try {
      return await this.parts.app(request)
    } finally {
      detachContext(request)
    }
  }
}

/**
 * The request as Elysia's router can read it over HTTPS. The router finds the path as the first
 * `/` from character 7 of the URL (`handler.standardHostname: false`, see app.ts), which in
 * `https://` is the scheme's own slash. The routes read the body, the signal and the headers
 * from `ctx.request`, so this stand-in carries only the method, the headers and an `http:` URL.
 */
function withHttpUrl(ctx: RequestContext): Request {
  return new Request(`http${ctx.url.slice(ctx.url.indexOf(':'))}`, { method: ctx.method, headers: ctx.headers })
}
