/**
 * Authentication as the pipeline and the event routes use it (README, "Authentication"): find
 * the token, verify it, answer 401 the RFC 6750 way, and bind a token to the `client_id` of the
 * event routes (403). Every refusal is counted by reason.
 */
import type { AuthConfig } from '../config'
import { GatewayError } from '../http/errors'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import type { RequestContext } from '../pipeline/context'
import { QUERY_TOKEN_PARAMETER, presentedToken } from './presented-token'
import { RemoteKeys } from './remote-keys'
import { type Principal, TokenRejected, TokenVerifier } from './token-verifier'

/** RFC 6750 §3: the challenge, with `error="invalid_token"` only when a token was sent (§3.1). */
const CHALLENGE = { 'www-authenticate': 'Bearer' }
const INVALID_TOKEN_CHALLENGE = { 'www-authenticate': 'Bearer error="invalid_token"' }

/** Below RFC 7518 §3.2's minimum for HS256, a secret is worth a warning at start. */
const MIN_SECRET_BYTES = 32

export class Authenticator {
  private readonly missingMessage: string

  private constructor(
    private readonly config: AuthConfig,
    private readonly verifier: TokenVerifier,
    private readonly keys: RemoteKeys | null,
    private readonly metrics: Metrics,
  ) {
    this.missingMessage = `a token is required: Authorization: Bearer <token>, the ${config.cookie} cookie or the ${QUERY_TOKEN_PARAMETER} query parameter`
  }

  /**
   * The authenticator of `config`, its keys being fetched in the background; null when authentication is off.
   * @example const auth = Authenticator.create(config.auth, logger, metrics)
   */
  static create(config: AuthConfig | null, logger: Logger, metrics: Metrics): Authenticator | null {
    if (config === null) return null
    if (config.jwtSecret !== null && Buffer.byteLength(config.jwtSecret) < MIN_SECRET_BYTES) {
      logger.warn(`AUTH_JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: HS256 secrets that short can be guessed offline from any token`)
    }
    const keys = config.jwksUrl === null ? null : new RemoteKeys(config.jwksUrl, logger, metrics)
    keys?.refresh()
    return new Authenticator(config, new TokenVerifier(config, keys?.resolve ?? null), keys, metrics)
  }

  /**
   * Sets `ctx.principal` from the request's token: at once when the token was verified before.
   * @throws GatewayError 401 `unauthorized` with `WWW-Authenticate` (as a rejection when verifying).
   */
  authenticate(ctx: RequestContext): void | Promise<void> {
    const presented = presentedToken(ctx, this.config.cookie)
    if (presented.kind === 'missing') throw this.refuse(ctx, 'missing', this.missingMessage, CHALLENGE)
    let verified: Principal | Promise<Principal>
    try {
      verified = this.verifier.verify(presented.token)
    } catch (error) {
      throw this.rejected(ctx, error)
    }
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
