/**
 * Step 5: is the request fit to be handled? Ambiguous framing is refused on every route, a
 * path no route answers gets 404 and a method its route does not answer 405 with `Allow`; a
 * proxied request must also name a registered service, a proxied method its policy allows, a
 * path its service can match without ambiguity and a body within its limit (README, "Reverse
 * proxy" and "Policies").
 */
import { GatewayError } from '../http/errors'
import { declaredLength } from '../http/framing'
import { resolveProxyRoute } from '../proxy/route'
import type { RequestContext } from '../request/context'

/**
 * What a `Host` may not hold (RFC 9110 §7.2: an authority, `host[:port]`): Bun builds the
 * request's URL from it, and a `/` there moves where the path seems to start.
 */
const NOT_IN_HOST = /[\s/\\?#@]/

/** @throws GatewayError `bad_request`, `not_found`, `method_not_allowed`, `unknown_service`, `forbidden` or `payload_too_large`. */
export function route(ctx: RequestContext): void {
  ctx.declaredLength = declaredLength(ctx.headers)
  // The path matched would not be the path forwarded: `fetch` cuts a target at its `#`.
  if (ctx.hasFragment) throw new GatewayError('bad_request', 'a request target cannot hold a fragment (#)')
  const host = ctx.headers.get('host')
  if (host !== null && NOT_IN_HOST.test(host)) throw new GatewayError('bad_request', 'the Host header is not an authority (host[:port])')
  const route = ctx.route
  if (route.name === 'not_found') throw new GatewayError('not_found', `no route for ${ctx.method} ${ctx.path}`)
  if (route.methods !== null && !route.methods.has(ctx.method)) {
    throw new GatewayError('method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${route.allow}`, { allow: route.allow })
  }
  if (route.kind === 'proxy') resolveProxyRoute(ctx)
}
