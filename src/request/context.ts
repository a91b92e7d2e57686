/**
 * The one object that travels through every step of a request (README, "Design notes"):
 * what identify learned, the route and the policy it was given, the rate-limit decision, and
 * what the record step needs to write the access log and the metrics.
 *
 * A class with every field set in the constructor, so all contexts share one shape and the
 * hot path stays monomorphic.
 */
import type { Server } from 'bun'
import type { Principal } from '../auth/token-verifier'
import type { RateDecision } from '../ratelimit/token-bucket'
import type { InstanceTarget } from '../config/settings'
import type { CallRecord, Upstream } from '../upstream/upstream'
import type { FailureKind } from '../upstream/failures'
import type { ActivePolicy, PolicyTable } from './policy-table'
import { ROUTES, type Route } from './route-table'

export class RequestContext implements CallRecord {
  /** Read once: Bun makes a new string each time `request.url` or `request.method` is read. */
  readonly url: string
  readonly method: string
  readonly headers: Headers
  /** Where the path starts in `url`, and where it ends (the `?`, or the end of the URL). */
  readonly pathStart: number
  readonly pathEnd: number
  /** `performance.now()` at arrival. */
  readonly startedAt: number
  /** The request target holds a `#`: no target may (RFC 9112 §3.2), and it is refused. */
  readonly hasFragment: boolean
  requestId = ''
  /** The socket peer, canonical spelling (no `::ffff:` prefix). */
  peerIp = ''
  /** After `TRUST_PROXY` resolution. */
  clientIp = ''
  /** The peer is in `TRUST_PROXY`: its forwarding headers are believed and passed on. */
  peerTrusted = false
  /** Who answers and which steps apply (`classify`). */
  route: Route = ROUTES.notFound
  /** Event routes: where the `:client_id` segment is in `url` (not decoded), and its value once decoded (`clientIdOf`). */
  paramStart = 0
  paramEnd = 0
  clientId: string | undefined = undefined
  /** Cancelling a question: where its `:question_id` segment is in `url` (not decoded). */
  questionStart = 0
  questionEnd = 0
  /** Proxy: the service segment as sent (not decoded), and where the rest of the path starts in `url`. */
  serviceName = ''
  restStart = 0
  /** The policy table the request started with, and the policy of its route (`resolvePolicy`). */
  table: PolicyTable | undefined = undefined
  active: ActivePolicy | undefined = undefined
  /** Proxy: on a service with routes, the path is spelled so that backends could read it differently (refused). */
  ambiguousPath = false
  /** Proxy: the registered service, when there is one. */
  upstream: Upstream | undefined = undefined
  /** Proxy: attempts made (retries on other instances included), and the instance of the last one. */
  attempts = 0
  instance: InstanceTarget | undefined = undefined
  /** Publishing: whether the request carries `Authorization: Bearer <PUBLISH_TOKEN>` (checked once). */
  hasPublishToken = false
  /** Who the request's token speaks for; absent when authentication is off (or the route needs none). */
  principal: Principal | undefined = undefined
  /** The body length the client declared (`Content-Length`), or null; set by the route step. */
  declaredLength: number | null = null
  /** Absent when the route is not rate limited or limiting is off. */
  rate: RateDecision | undefined = undefined
  /** Set when the gateway answered before the route did (preflight, 429, 401, ...): metrics count it as `gateway`. */
  answeredEarly = false
  /** A CORS preflight, answered by the gateway with its own CORS headers. */
  isPreflight = false
  /** The respond step's headers are on the response already (an event stream's route adds them itself). */
  gatewayHeadersApplied = false
  /** Why an exchange with a backend failed, for the log line. */
  upstreamError: FailureKind | undefined = undefined

  constructor(
    readonly request: Request,
    /** The server that accepted the request; absent when a test calls `handle` directly. */
    readonly server: Server<unknown> | undefined,
  ) {
    const url = request.url
    this.url = url
    this.method = request.method
    this.headers = request.headers
    this.pathStart = url.indexOf('/', url.indexOf('//') + 2)
    const query = url.indexOf('?', this.pathStart)
    this.pathEnd = query === -1 ? url.length : query
    // Bun keeps a `#` of the request line in the URL; `fetch` would drop what follows it.
    this.hasFragment = url.includes('#', this.pathStart)
    this.startedAt = performance.now()
  }

  /** The path as received, without the query: `/api/v1/runner/jobs`. */
  get path(): string {
    return this.url.slice(this.pathStart, this.pathEnd)
  }

  /** Lifts Bun's idle timeout for this request: slow backends and event streams must outlive it. */
  keepOpen(): void {
    this.server?.timeout(this.request, 0)
  }
}
