/**
 * One request, start to end, as ordered steps over one `RequestContext` (README, "Design notes"),
 * in the spirit of Pingora's phases:
 *
 *   identify → preflight → rate limit → authenticate → route → handle → respond → record
 *
 * The route table (`request/route-table.ts`) is the only router: identify classifies the
 * request once and gives it its policy, each step does what the route and policy say, and the
 * handle step calls the route's handler: the proxy, or one of the gateway's own.
 *
 * Only the steps that must wait return promises (a shared rate limit, a token not verified
 * before); the others stay synchronous, so the embedded default awaits nothing before the proxy.
 *
 * A step either lets the request go on, answers it (a preflight), or throws (a refusal); every
 * throw becomes a JSON error in one place (`failureResponse`). `record` runs for every request,
 * early exits included, and `respond` for every response handed back; a WebSocket upgrade has
 * none (Bun answers the 101), so the bridge puts the same headers on it (`writeGatewayHeaders`).
 */
import type { Server } from 'bun'
import type { Authenticator } from '../auth/authenticator'
import type { PublisherAuth } from '../auth/publisher-auth'
import type { Config } from '../config/settings'
import type { CorsPolicy } from '../http/cors'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { proxyRequest } from '../proxy/handler'
import { type WebSocketBridge, isWebSocketUpgrade } from '../proxy/websocket'
import type { RequestContext } from '../request/context'
import type { PolicyTable } from '../request/policy-table'
import type { OwnRouteName } from '../request/route-table'
import type { AccessLog } from './access-log'
import { authenticate } from './authenticate'
import { identify } from './identify'
import { preflight } from './preflight'
import { rateLimit, rateLimitSubject } from './rate-limit'
import { record } from './record'
import { failureResponse, respond } from './respond'
import { route } from './route'

/** A handler of one of the gateway's own routes, given a request the steps admitted. */
export type RouteHandler = (ctx: RequestContext) => Response | Promise<Response>

/** What the steps work with. */
export interface PipelineParts {
  config: Config
  cors: CorsPolicy
  publisherAuth: PublisherAuth
  /** Null: authentication is off. */
  authenticator: Authenticator | null
  /** The policy table current now (a reload swaps it). */
  table: () => PolicyTable
  /** The gateway's own routes: ops and events. */
  /** The gateway's own handlers; `console` only in demo mode. */
  handlers: Readonly<Record<Exclude<OwnRouteName, 'console'>, RouteHandler> & { console?: RouteHandler }>
  /** WebSocket upgrades of proxied routes. */
  websockets: WebSocketBridge
  metrics: Metrics
  accessLog: AccessLog
  logger: Logger
}

export class Pipeline {
  private readonly identifyParts: Parameters<typeof identify>[2]
  /** How clients reach the gateway, for `X-Forwarded-Proto`. */
  private readonly scheme: 'http' | 'https'

  constructor(private readonly parts: PipelineParts) {
    this.identifyParts = { trustProxy: parts.config.trustProxy, publisherAuth: parts.publisherAuth, table: parts.table, demo: parts.handlers.console !== undefined }
    this.scheme = parts.config.tls === null ? 'http' : 'https'
  }

  /**
   * Answers one request; never throws. Resolves with nothing once a WebSocket upgrade has been
   * handed to Bun, which then answers the 101 itself.
   * @example Bun.serve({ fetch: (request, server) => pipeline.handle(request, server) })
   */
  async handle(request: Request, server?: Server<unknown>): Promise<Response | undefined> {
    const parts = this.parts
    const ctx = identify(request, server, this.identifyParts)
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
    const limited = rateLimit(ctx)
    return limited === undefined ? this.afterRateLimit(ctx) : limited.then(() => this.afterRateLimit(ctx))
  }

  /** Authenticate → the subject's bucket → the rest; a token verified before is accepted without waiting. */
  private afterRateLimit(ctx: RequestContext): Promise<Response | undefined> {
    const parts = this.parts
    const authenticated = authenticate(ctx, parts.publisherAuth, parts.authenticator)
    if (authenticated !== undefined) return authenticated.then(() => this.afterAuthenticate(ctx))
    return this.afterAuthenticate(ctx)
  }

  private afterAuthenticate(ctx: RequestContext): Promise<Response | undefined> {
    const limited = rateLimitSubject(ctx)
    return limited === undefined ? this.handleRoute(ctx) : limited.then(() => this.handleRoute(ctx))
  }

  /** Route → handle. Not `async`: a proxied request gets no promise beyond the upstream's own (a refusal throws to `handle`). */
  private handleRoute(ctx: RequestContext): Promise<Response | undefined> {
    route(ctx)
    const name = ctx.route.name
    if (name === 'proxy') return isWebSocketUpgrade(ctx) ? this.parts.websockets.upgrade(ctx, this.scheme) : proxyRequest(ctx, this.scheme)
    // The route step refused `not_found`: only the gateway's own routes are left.
    return Promise.resolve(this.parts.handlers[name as OwnRouteName]!(ctx))
  }
}
