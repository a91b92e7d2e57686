/**
 * CORS for browsers (Fetch standard §3.2). Written here rather than with `@elysiajs/cors`
 * because that plugin answers every `OPTIONS` itself (a gateway must proxy a plain `OPTIONS`)
 * and sends `Access-Control-Allow-Credentials: true` even with a `*` origin.
 */
import { errorResponse } from './errors'

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'
/** Response headers a browser script may read besides the CORS-safelisted ones. */
const EXPOSED_HEADERS = 'X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, WWW-Authenticate'
const PREFLIGHT_MAX_AGE_SECONDS = '600'

export class CorsPolicy {
  private readonly allowed: ReadonlySet<string> | '*'

  constructor(origins: '*' | readonly string[]) {
    this.allowed = origins === '*' ? '*' : new Set(origins)
  }

  /** A real preflight has both `Origin` and `Access-Control-Request-Method`; any other `OPTIONS` is the backend's. */
  static isPreflight(request: Request): boolean {
    return request.method === 'OPTIONS' && request.headers.has('origin') && request.headers.has('access-control-request-method')
  }

  /**
   * The gateway's answer to a preflight: 204 with the grants, or 403 for an origin not listed.
   * @example policy.preflight(request, requestId).status // 204
   */
  preflight(request: Request, requestId: string): Response {
    const origin = request.headers.get('origin')!
    const vary = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'
    const headers = new Headers({ vary })
    if (!this.grant(origin, headers)) {
      return errorResponse('forbidden', `origin ${origin} is not allowed (CORS_ORIGINS)`, requestId, { vary })
    }
    headers.set('access-control-allow-methods', ALLOWED_METHODS)
    const requestedHeaders = request.headers.get('access-control-request-headers')
    if (requestedHeaders) headers.set('access-control-allow-headers', requestedHeaders)
    headers.set('access-control-max-age', PREFLIGHT_MAX_AGE_SECONDS)
    return new Response(null, { status: 204, headers })
  }

  /** Whether a page from `origin` may use the gateway at all: any with `*`, else the listed ones. */
  allowsOrigin(origin: string): boolean {
    return this.allowed === '*' || this.allowed.has(origin)
  }

  /** Whether `origin` is listed in `CORS_ORIGINS` (so it gets credentials); never true for `*`. */
  grantsCredentialsTo(origin: string): boolean {
    return this.allowed !== '*' && this.allowed.has(origin)
  }

  /** Adds the CORS grant for `origin` to an actual response; the backend's own grant wins. */
  decorate(origin: string | null, headers: Headers): void {
    if (origin === null || headers.has('access-control-allow-origin')) return
    if (this.grant(origin, headers)) headers.set('access-control-expose-headers', EXPOSED_HEADERS)
    if (this.allowed !== '*') headers.append('vary', 'Origin')
  }

  private grant(origin: string, headers: Headers): boolean {
    if (this.allowed === '*') {
      // Never credentials with '*': browsers reject the pair, and it would hand cookies to any site.
      headers.set('access-control-allow-origin', '*')
      return true
    }
    if (!this.allowed.has(origin)) return false
    headers.set('access-control-allow-origin', origin)
    headers.set('access-control-allow-credentials', 'true')
    return true
  }
}
