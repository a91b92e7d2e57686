/**
 * Step 5: is the request fit to be handled? Ambiguous framing is refused on every route, and a
 * proxied request must name a registered service, a proxied method and a body within
 * `MAX_BODY_BYTES` (README, "Reverse proxy").
 */
import { declaredLength } from '../http/framing'
import { resolveProxyRoute } from '../proxy/route'
import type { Upstreams } from '../upstream/upstream'
import type { RequestContext } from './context'

/** @throws GatewayError `bad_request`, `unknown_service` or `payload_too_large`. */
export function route(ctx: RequestContext, upstreams: Upstreams, maxBodyBytes: number): void {
  ctx.declaredLength = declaredLength(ctx.headers)
  if (ctx.kind === 'proxy') resolveProxyRoute(ctx, upstreams, maxBodyBytes)
}
