/**
 * The route step of a proxied request (README, "Reverse proxy"): the service it names, and
 * whether it may be forwarded at all. The path and query are never decoded: they are forwarded
 * as sliced from the URL as received. (Bun has already resolved dot segments, `%2e%2e`
 * included, against the whole gateway path, so a request cannot climb out of a service's base
 * path.)
 */
import { GatewayError } from '../http/errors'
import type { RequestContext } from '../pipeline/context'
import type { Upstreams } from '../upstream/upstream'

/** The methods the proxy forwards; metrics count any other as `OTHER`. */
export const PROXIED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** A `%` not followed by two hex digits (RFC 3986 §2.1). */
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/

/**
 * Sets `ctx.upstream` for the service segment that `classify` found.
 * @throws GatewayError `bad_request` (malformed percent-encoding, a method not proxied),
 *   `unknown_service`, or `payload_too_large` when `Content-Length` already passes the limit.
 */
export function resolveProxyRoute(ctx: RequestContext, upstreams: Upstreams, maxBodyBytes: number): void {
  if (ctx.url.includes('%', ctx.pathStart) && MALFORMED_PERCENT.test(ctx.url.slice(ctx.pathStart))) {
    throw new GatewayError('bad_request', 'malformed percent-encoding in the request target')
  }
  const upstream = upstreams.get(ctx.serviceName)
  if (upstream === undefined) {
    throw new GatewayError('unknown_service', `no service named ${JSON.stringify(decodeSafely(ctx.serviceName))} is registered`)
  }
  ctx.upstream = upstream
  const method = ctx.method
  if (!PROXIED_METHODS.has(method)) throw new GatewayError('bad_request', `method ${method} is not proxied`)
  if (ctx.declaredLength !== null && ctx.declaredLength > maxBodyBytes) {
    throw new GatewayError('payload_too_large', `request body of ${ctx.declaredLength} bytes exceeds the limit of ${maxBodyBytes}`)
  }
}

function decodeSafely(value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
