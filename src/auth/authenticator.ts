/**
 * Authentication as the pipeline and the event routes use it (README, "Authentication"): find
 * the token, verify it, answer 401 the RFC 6750 way, and bind a token to the `client_id` of the
 * event routes (403). Every refusal is counted by reason.
 */
import type { AuthConfig } from '../config'
import type { CorsPolicy } from '../http/cors'
import { GatewayError } from '../http/errors'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import type { RequestContext } from '../pipeline/context'
import { QUERY_TOKEN_PARAMETER, presentedToken } from './presented-token'
import { RemoteKeys } from './remote-keys'
import { TokenRejected, TokenVerifier } from './token-verifier'

/** RFC 6750 §3: the challenge, with `error="invalid_token"` only when a token was sent (§3.1). */
const CHALLENGE = { 'www-authenticate': 'Bearer' }
const INVALID_TOKEN_CHALLENGE = { 'www-authenticate': 'Bearer error="invalid_token"' }

/** RFC 9110 §9.2.1: the methods that change nothing, which a cross-site request may make. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Below RFC 7518 §3.2's minimum for HS256, a secret is worth a warning at start. */
const MIN_SECRET_BYTES = 32

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
   * Sets `ctx.principal` from the request's token: at once when the token was verified before.
   * @throws GatewayError 401 `unauthorized` with `WWW-Authenticate` (as a rejection when verifying).
   */
  authenticate(ctx: RequestContext): void | Promise<void> {
    const presented = presentedToken(ctx, this.config.cookie)
    if (presented.kind === 'missing') throw this.refuse(ctx, 'missing', this.missingMessage, CHALLENGE)
    if (presented.from === 'cookie') this.refuseCrossSite(ctx)
    const verified = this.verifier.verify(presented.token)
    if (!(verified instanceof Promise)) {
      ctx.principal = verified
      return
    }
    return verified.then(
      (principal) => {
        ctx.principal = principal
      },
      (error) => {
        throw this.rejected(ctx, error)
      },
    )
  }

  /**
   * On the event routes a token speaks for one client only: its `AUTH_CLIENT_CLAIM` must equal `clientId`.
   * @param clientId the percent-decoded `:client_id`.
   * @throws GatewayError 403 `forbidden`.
   */
  requireClient(ctx: RequestContext, clientId: string): void {
    if (ctx.principal?.claims[this.config.clientClaim] === clientId) return
    throw this.refuse(ctx, 'forbidden', `this token is not for client_id ${JSON.stringify(clientId)}`)
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
  private refuseCrossSite(ctx: RequestContext): void {
    const upgrade = ctx.headers.has('upgrade')
    if (SAFE_METHODS.has(ctx.method) && !upgrade) return
    const origin = ctx.headers.get('origin')
    if (origin === null || isOwnOrigin(ctx, origin) || this.cors.grantsCredentialsTo(origin)) return
    const what = upgrade ? 'an upgrade' : `a ${ctx.method}`
    throw this.refuse(ctx, 'forbidden', `the ${this.config.cookie} cookie is not accepted on ${what} from origin ${origin}: not the gateway's own origin, nor listed in CORS_ORIGINS`)
  }

  private rejected(ctx: RequestContext, error: unknown): GatewayError {
    if (!(error instanceof TokenRejected)) throw error
    return this.refuse(ctx, error.reason, error.message, INVALID_TOKEN_CHALLENGE)
  }

  private refuse(ctx: RequestContext, reason: 'missing' | 'invalid' | 'expired' | 'forbidden', message: string, headers?: Record<string, string>): GatewayError {
    ctx.answeredEarly = true
    this.metrics.authFailures.inc({ reason })
    return new GatewayError(reason === 'forbidden' ? 'forbidden' : 'unauthorized', message, headers)
  }
}

/**
 * Whether `origin` is the gateway's own, as the browser saw it: the scheme and `Host` the
 * request arrived with, or, behind a `TRUST_PROXY` peer, its `X-Forwarded-Proto` and
 * `X-Forwarded-Host` (the first of each list: what the outermost proxy was asked).
 */
function isOwnOrigin(ctx: RequestContext, origin: string): boolean {
  const asked = origin.toLowerCase()
  if (asked === ctx.url.slice(0, ctx.pathStart).toLowerCase()) return true
  if (!ctx.peerTrusted) return false
  const proto = ctx.headers.get('x-forwarded-proto')
  const host = ctx.headers.get('x-forwarded-host')
  return proto !== null && host !== null && asked === `${firstOfList(proto)}://${firstOfList(host)}`.toLowerCase()
}

function firstOfList(value: string): string {
  const comma = value.indexOf(',')
  return (comma === -1 ? value : value.slice(0, comma)).trim()
}
