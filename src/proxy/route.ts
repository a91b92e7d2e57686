/**
 * The route step of a proxied request (README, "Reverse proxy" and "Policies"): the service it
 * names, and whether it may be forwarded at all. The path and query are never decoded for
 * forwarding: they go as sliced from the URL as received. (Bun has already resolved dot
 * segments, `%2e%2e` included, against the whole gateway path, so a request cannot climb out
 * of a service's base path.) On a service with routes a path that backends could read another
 * way than the gateway matched it is refused (`config/route-paths.ts`).
 */
import { ROUTE_METHODS } from '../config/policies'
import { AMBIGUOUS_PATH } from '../config/route-paths'
import { GatewayError } from '../http/errors'
import type { RequestContext } from '../request/context'

/** The methods the proxy forwards; metrics count any other as `OTHER`. */
export const PROXIED_METHODS: ReadonlySet<string> = new Set(ROUTE_METHODS)

/** A `%` not followed by two hex digits (RFC 3986 §2.1). */
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/

/**
 * Checks the service and policy that `resolvePolicy` found for the request.
 * @throws GatewayError `bad_request` (malformed percent-encoding, a method not proxied, an
 *   ambiguous path), `unknown_service`, `forbidden` (an answer path of `hitl`),
 *   `method_not_allowed` (with `Allow`), or `payload_too_large` when `Content-Length` already
 *   passes the limit.
 */
export function resolveProxyRoute(ctx: RequestContext): void {
  if (ctx.url.includes('%', ctx.pathStart) && MALFORMED_PERCENT.test(ctx.url.slice(ctx.pathStart))) {
    throw new GatewayError('bad_request', 'malformed percent-encoding in the request target')
  }
  if (ctx.upstream === undefined) {
    throw new GatewayError('unknown_service', `no service named ${JSON.stringify(decodeSafely(ctx.serviceName))} is registered`)
  }
  // The paths of hitl that receive answers: only the gateway sends there, through the answer route.
  const answerPaths = ctx.table!.services.get(ctx.serviceName)!.answerPaths
  if (answerPaths.length > 0 && answerPaths.some((paths) => paths.covers(ctx.url.slice(ctx.restStart, ctx.pathEnd)))) {
    throw new GatewayError('forbidden', 'answers reach the hitl service only through POST /api/v1/events/<client_id>/response')
  }
  if (ctx.ambiguousPath) throw new GatewayError('bad_request', `${AMBIGUOUS_PATH}; it is not forwarded`)
  const method = ctx.method
  if (!PROXIED_METHODS.has(method)) throw new GatewayError('bad_request', `method ${method} is not proxied`)
  const policy = ctx.active!.policy
  if (policy.methods !== null && !policy.methods.has(method)) {
    const allow = [...policy.methods].join(', ')
    throw new GatewayError('method_not_allowed', `${method} is not allowed here; allowed: ${allow}`, { allow })
  }
  if (ctx.declaredLength !== null && ctx.declaredLength > policy.maxBodyBytes) {
    throw new GatewayError('payload_too_large', `request body of ${ctx.declaredLength} bytes exceeds the limit of ${policy.maxBodyBytes}`)
  }
}

function decodeSafely(value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
