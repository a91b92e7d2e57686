/**
 * Authentication as the pipeline and the event routes use it (README, "Authentication"): find
 * the token, verify it, answer 401 the RFC 6750 way, bind a token to the `client_id` of the
 * event routes and hold it to a route's claim rules (403). It reads a request's headers and URL
 * and gives back who the token speaks for; every refusal is counted by reason.
 */
import type { AuthConfig } from '../config/settings'
import type { ClaimRequirement } from '../config/policies'
import type { CorsPolicy } from '../http/cors'
import { GatewayError } from '../http/errors'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { holdsClaims } from './claims'
import { type CredentialSource, QUERY_TOKEN_PARAMETER, presentedToken } from './presented-token'
import { RemoteKeys } from './remote-keys'
import { type Principal, TokenRejected, TokenVerifier } from './token-verifier'

/** RFC 6750 §3: the challenge, with `error="invalid_token"` only when a token was sent (§3.1). */
const CHALLENGE = { 'www-authenticate': 'Bearer' }
const INVALID_TOKEN_CHALLENGE = { 'www-authenticate': 'Bearer error="invalid_token"' }

/** RFC 9110 §9.2.1: the methods that change nothing, which a cross-site request may make. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Below RFC 7518 §3.2's minimum for HS256, a secret is worth a warning at start. */
const MIN_SECRET_BYTES = 32

/** What authentication reads of a request. */
export interface AuthRequest extends CredentialSource {
  readonly method: string
  /** The socket peer is in `TRUST_PROXY`: its `X-Forwarded-Proto` and `-Host` name the gateway's own origin. */
  readonly peerTrusted: boolean
}

/** Why a request was refused, as `gateway_auth_failures_total` counts it. */
type RefusalReason = 'missing' | 'invalid' | 'expired' | 'forbidden'

export class Authenticator {
  private readonly missingMessage: string

  private constructor(
    private readonly config: AuthConfig,
    private readonly verifier: TokenVerifier,
    private readonly keys: RemoteKeys | null,
    private readonly cors: CorsPolicy,
    private readonly metrics: Metrics,
  ) {
    this.missingMessage = `a token is required: Authorization: Bearer <token>, the ${config.cookie} cookie or the ${QUERY_TOKEN_PARAMETER} query parameter`
  }

  /**
   * The authenticator of `config`, its keys being fetched in the background; null when authentication is off.
   * @param cors which other origins a cookie's token is accepted from on unsafe methods and upgrades.
   * @example const auth = Authenticator.create(config.auth, cors, logger, metrics)
   */
  static create(config: AuthConfig | null, cors: CorsPolicy, logger: Logger, metrics: Metrics): Authenticator | null {
    if (config === null) return null
    if (config.jwtSecret !== null && Buffer.byteLength(config.jwtSecret) < MIN_SECRET_BYTES) {
      logger.warn(`AUTH_JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: HS256 secrets that short can be guessed offline from any token`)
    }
    const keys = config.jwksUrl === null ? null : new RemoteKeys(config.jwksUrl, logger, metrics)
    keys?.refresh()
    return new Authenticator(config, new TokenVerifier(config, keys?.resolve ?? null), keys, cors, metrics)
  }

  /**
   * Who the request's token speaks for: at once when the token was verified before.
   * @param mode `required`: no token is a 401; `optional`: no token is no principal (a token
   *   that is not valid is still a 401).
   * @throws GatewayError 401 `unauthorized` with `WWW-Authenticate`, or 403 for a cookie's
   *   token from another site (as a rejection when verifying).
   * @example const principal = await authenticator.authenticate(request, 'required')
   */
  authenticate(request: AuthRequest, mode: 'required' | 'optional'): Principal | undefined | Promise<Principal> {
    const presented = presentedToken(request, this.config.cookie)
    if (presented.kind === 'missing') {
      if (mode === 'optional') return undefined
      throw this.refuse('missing', this.missingMessage, CHALLENGE)
    }
    if (presented.from === 'cookie') this.refuseCrossSite(request)
    const verified = this.verifier.verify(presented.token)
    if (!(verified instanceof Promise)) return verified
    return verified.catch((error) => {
      throw this.rejected(error)
    })
  }

  /** The 401 a route with claim rules gives a request that brought no token (`auth: optional`). */
  missing(): GatewayError {
    return this.refuse('missing', this.missingMessage, CHALLENGE)
  }

  /**
   * On the event routes a token speaks for one client only: its `AUTH_CLIENT_CLAIM` must equal `clientId`.
   * @param clientId the percent-decoded `:client_id`.
   * @throws GatewayError 403 `forbidden`.
   */
  requireClient(principal: Principal | undefined, clientId: string): void {
    if (principal?.claims[this.config.clientClaim] === clientId) return
    throw this.refuse('forbidden', `this token is not for client_id ${JSON.stringify(clientId)}`)
  }

  /**
   * A route's `require`: every claim must hold one of its values (README, "Policies").
   * @throws GatewayError 403 `forbidden`, naming the first claim that does not hold.
   */
  requireClaims(principal: Principal, requirements: readonly ClaimRequirement[]): void {
    const failed = holdsClaims(principal.claims, requirements)
    if (failed !== undefined) throw this.refuse('forbidden', `this token does not hold the claim this route requires: ${failed.claim}`)
  }

  close(): void {
    this.keys?.close()
  }

  /**
   * A browser sends a cookie with a request any site makes: a plain form POST (CSRF), and a
   * WebSocket handshake, which no CORS rule guards (cross-site WebSocket hijacking). So a
   * cookie's token is accepted on an unsafe method or on any upgrade only from the gateway's own
   * origin or one listed in `CORS_ORIGINS`, never through `*`. Browsers always send `Origin` on
   * those; a request without one does not come from another site's page.
   * @throws GatewayError 403 `forbidden`.
   */
  private refuseCrossSite(request: AuthRequest): void {
    const upgrade = request.headers.has('upgrade')
    if (SAFE_METHODS.has(request.method) && !upgrade) return
    const origin = request.headers.get('origin')
    if (origin === null || isOwnOrigin(request, origin) || this.cors.grantsCredentialsTo(origin)) return
    const what = upgrade ? 'an upgrade' : `a ${request.method}`
    throw this.refuse('forbidden', `the ${this.config.cookie} cookie is not accepted on ${what} from origin ${origin}: not the gateway's own origin, nor listed in CORS_ORIGINS`)
  }

  private rejected(error: unknown): GatewayError {
    if (!(error instanceof TokenRejected)) throw error
    return this.refuse(error.reason, error.message, INVALID_TOKEN_CHALLENGE)
  }

  private refuse(reason: RefusalReason, message: string, headers?: Record<string, string>): GatewayError {
    this.metrics.authFailures.inc({ reason })
    return new GatewayError(reason === 'forbidden' ? 'forbidden' : 'unauthorized', message, headers)
  }
}

/**
 * Whether `origin` is the gateway's own, as the browser saw it: the scheme and `Host` the
 * request arrived with, or, behind a `TRUST_PROXY` peer, its `X-Forwarded-Proto` and
 * `X-Forwarded-Host` (the first of each list: what the outermost proxy was asked).
 */
function isOwnOrigin(request: AuthRequest, origin: string): boolean {
  const asked = origin.toLowerCase()
  const url = request.url
  if (asked === url.slice(0, url.indexOf('/', url.indexOf('//') + 2)).toLowerCase()) return true
  if (!request.peerTrusted) return false
  const proto = request.headers.get('x-forwarded-proto')
  const host = request.headers.get('x-forwarded-host')
  return proto !== null && host !== null && asked === `${firstOfList(proto)}://${firstOfList(host)}`.toLowerCase()
}

function firstOfList(value: string): string {
  const comma = value.indexOf(',')
  return (comma === -1 ? value : value.slice(0, comma)).trim()
}
