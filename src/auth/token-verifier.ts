/**
 * Is this JWT good? (README, "Authentication"). jose does the cryptography and the claim checks;
 * this module fixes the policy: only the configured key's algorithms, `exp` and `sub` required,
 * 30 s of clock leeway, `AUTH_ISSUER` and `AUTH_AUDIENCE` when set. Keys or key URLs inside a
 * token's header are never looked at: the key comes from the configuration alone.
 *
 * Verified tokens are remembered until they expire (at most `VERIFIED_CACHE_MAX_AGE_MS`): a
 * browser sends the same token with every request, and a verification costs about 85 µs of CPU
 * while a remembered one costs a Map lookup (README, "Design notes").
 */
import { type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, errors, jwtVerify } from 'jose'
import type { AuthConfig } from '../config/settings'

/** RFC 7519 §4.1.4/§4.1.5 allow "some small leeway" for clock skew. */
export const CLOCK_LEEWAY_SECONDS = 30
/** The algorithms each kind of key may sign with; never `none`, never HS256 against a public key. */
const SECRET_ALGORITHMS = ['HS256']
const KEY_SET_ALGORITHMS = ['RS256', 'ES256']
/**
 * How many verified tokens are remembered (the oldest is forgotten first), and the longest one
 * remembered: together they bound the memory to about 20 MB at worst.
 */
export const VERIFIED_CACHE_ENTRIES = 5_000
const VERIFIED_CACHE_MAX_TOKEN_LENGTH = 4_096
/** A remembered token is verified again after this long, so a key the provider withdrew stops counting. */
export const VERIFIED_CACHE_MAX_AGE_MS = 60_000
/**
 * `X-Auth-Subject` carries `sub`: visible ASCII, inner spaces allowed. Not at either end, where a
 * header value's spaces are trimmed: `" admin "` would reach the backend as `admin`.
 */
const HEADER_SAFE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/

/** Who a valid token speaks for. */
export interface Principal {
  /** The `sub` claim. */
  subject: string
  claims: JWTPayload
}

/** Why a token was refused: the metric label and the message's only detail. */
export type RejectionReason = 'invalid' | 'expired'

export class TokenRejected extends Error {
  constructor(readonly reason: RejectionReason) {
    super(reason === 'expired' ? 'the token has expired' : 'the token is not valid')
  }
}

interface Remembered {
  principal: Principal
  /** `Date.now()` after which the token is verified again. */
  until: number
}

export class TokenVerifier {
  /** jose's verification with the configured key and checks, at a given time. */
  private readonly check: (token: string, now: Date) => Promise<JWTPayload>
  private readonly verified = new Map<string, Remembered>()

  /**
   * @param keys the key set's resolver, with `AUTH_JWKS_URL`.
   * @param now the clock (tests move it).
   */
  constructor(
    config: AuthConfig,
    keys: JWTVerifyGetKey | null,
    private readonly now: () => number = Date.now,
  ) {
    const options: JWTVerifyOptions = {
      algorithms: config.jwtSecret !== null ? SECRET_ALGORITHMS : KEY_SET_ALGORITHMS,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_LEEWAY_SECONDS,
      ...(config.issuer === null ? {} : { issuer: config.issuer }),
      ...(config.audience === null ? {} : { audience: config.audience }),
    }
    if (config.jwtSecret !== null) {
      const secret = new TextEncoder().encode(config.jwtSecret)
      this.check = async (token, currentDate) => (await jwtVerify(token, secret, { ...options, currentDate })).payload
    } else {
      const keySet = keys!
      this.check = async (token, currentDate) => (await jwtVerify(token, keySet, { ...options, currentDate })).payload
    }
  }

  /**
   * The principal of a valid token: at once for a token verified before, else a promise.
   * @example const principal = await verifier.verify(token) // principal.subject === 'alice'
   * @throws TokenRejected (as a rejection when not remembered).
   */
  verify(token: string): Principal | Promise<Principal> {
    const remembered = this.verified.get(token)
    if (remembered !== undefined) {
      if (this.now() < remembered.until) return remembered.principal
      this.verified.delete(token)
    }
    return this.verifyNow(token)
  }

  private async verifyNow(token: string): Promise<Principal> {
    let claims: JWTPayload
    try {
      claims = await this.check(token, new Date(this.now()))
    } catch (error) {
      throw new TokenRejected(error instanceof errors.JWTExpired ? 'expired' : 'invalid')
    }
    const subject = claims.sub
    if (typeof subject !== 'string' || !HEADER_SAFE.test(subject)) throw new TokenRejected('invalid')
    const principal: Principal = { subject, claims }
    this.remember(token, principal, claims.exp!)
    return principal
  }

  private remember(token: string, principal: Principal, exp: number): void {
    if (token.length > VERIFIED_CACHE_MAX_TOKEN_LENGTH) return
    if (this.verified.size >= VERIFIED_CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!)
    const now = this.now()
    this.verified.set(token, { principal, until: Math.min((exp + CLOCK_LEEWAY_SECONDS) * 1000, now + VERIFIED_CACHE_MAX_AGE_MS) })
  }
}
