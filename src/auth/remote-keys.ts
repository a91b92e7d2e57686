/**
 * The identity provider's public keys from `AUTH_JWKS_URL` (README, "Authentication"). jose's
 * remote key set does the fetching, the key selection by `kid` and `alg`, and the 30 s cooldown
 * between fetches for unknown `kid`s. Around it, this module adds what a gateway on the open
 * internet needs and jose leaves to its caller:
 *
 * - the keys are fetched at start, and the start does not wait for them;
 * - a failed fetch is not tried again for `RETRY_AFTER_FAILURE_MS`, however many tokens arrive
 *   meanwhile (jose would fetch again for every token while it has no keys);
 * - the keys are refreshed every `REFRESH_INTERVAL_MS` in the background, and a failed refresh
 *   keeps the keys already known (jose, past its cache age, would refuse every token while the
 *   provider is down).
 */
import { type JWTVerifyGetKey, createRemoteJWKSet, customFetch } from 'jose'
import { withoutCredentials } from '../config/settings'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'

/** A `kid` the cache does not know triggers a fetch only if the last one is older than this. */
export const UNKNOWN_KID_COOLDOWN_MS = 30_000
/** After a failed fetch, tokens are refused without a new attempt for this long. */
export const RETRY_AFTER_FAILURE_MS = 1_000
/** Routine refresh, so a key the provider withdrew stops being trusted. */
export const REFRESH_INTERVAL_MS = 10 * 60_000
/** A fetch that takes longer fails. */
const FETCH_TIMEOUT_MS = 5_000

export class RemoteKeys {
  /** For `jwtVerify`: the key for a token's header. */
  readonly resolve: JWTVerifyGetKey
  private readonly reload: () => Promise<void>
  private lastFailureAt = Number.NEGATIVE_INFINITY
  /** Whether the last fetch failed, so an outage is logged once and its end once. */
  private failing = false
  private readonly refresher: ReturnType<typeof setInterval>
  /** The URL for log lines, without credentials or query (either may hold a secret). */
  private readonly where: string

  constructor(
    url: URL,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    const remote = createRemoteJWKSet(url, {
      cooldownDuration: UNKNOWN_KID_COOLDOWN_MS,
      // Never stale for jose: the refresher below replaces the keys, and keeps them when it fails.
      cacheMaxAge: Number.POSITIVE_INFINITY,
      timeoutDuration: FETCH_TIMEOUT_MS,
      [customFetch]: (href: string, init: RequestInit) => this.fetchKeys(href, init),
    })
    this.resolve = remote
    this.where = url.origin + url.pathname
    this.reload = () => remote.reload()
    this.refresher = setInterval(() => this.refresh(), REFRESH_INTERVAL_MS).unref()
  }

  /** Fetches the keys now, in the background (at start). */
  refresh(): void {
    this.reload().catch(() => {
      // Logged by fetchKeys; requests get 401 until the keys arrive.
    })
  }

  close(): void {
    clearInterval(this.refresher)
  }

  /** Every fetch jose makes comes through here. */
  private async fetchKeys(href: string, init: RequestInit): Promise<Response> {
    if (performance.now() - this.lastFailureAt < RETRY_AFTER_FAILURE_MS) {
      throw new Error(`the key set could not be fetched less than ${RETRY_AFTER_FAILURE_MS} ms ago`)
    }
    try {
      const response = await fetch(href, init)
      // Read here, not by jose: a body that is not a key set must count as a failed fetch too.
      const body = await response.text()
      if (response.status !== 200) throw new Error(`status ${response.status}`)
      const keys = (JSON.parse(body) as { keys?: unknown }).keys
      if (!Array.isArray(keys)) throw new Error('the body is not a JSON Web Key Set (no "keys" array)')
      this.succeeded(keys.length)
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } })
    } catch (error) {
      this.failed(error)
      throw error
    }
  }

  private succeeded(keyCount: number): void {
    this.metrics.jwksFetches.inc({ outcome: 'ok' })
    if (this.failing) this.logger.info({ jwks_url: this.where, keys: keyCount }, 'JWKS fetched again: tokens are verified')
    else this.logger.debug({ jwks_url: this.where, keys: keyCount }, 'JWKS fetched')
    this.failing = false
  }

  private failed(error: unknown): void {
    this.metrics.jwksFetches.inc({ outcome: 'error' })
    this.lastFailureAt = performance.now()
    if (!this.failing) {
      this.logger.warn({ jwks_url: this.where, err: withoutCredentials((error as Error).message) }, 'JWKS cannot be fetched: tokens signed with unknown keys get 401 until it can')
    }
    this.failing = true
  }
}
