/**
 * Step 1: who is asking, and for what. Names the request (`X-Request-Id`), finds the client
 * (the socket peer, or through `TRUST_PROXY`), classifies the route once, gives it its policy
 * from the table current now, and checks a publisher's token once (the rate limit and the
 * authenticate step both need it).
 */
import type { Server } from 'bun'
import type { PublisherAuth } from '../auth/publisher-auth'
import { type TrustedProxies, canonicalIp } from '../http/client-ip'
import { requestIdFor } from '../http/request-id'
import { RequestContext } from '../request/context'
import { type PolicyTable, resolvePolicy } from '../request/policy-table'
import { ROUTES, classify } from '../request/route-table'

export interface IdentifyParts {
  trustProxy: TrustedProxies
  publisherAuth: PublisherAuth
  /** The policy table current now: the request keeps it to its end, whatever a reload does meanwhile. */
  table: () => PolicyTable
  /** `api-gateway demo`: `/` is its console page; elsewhere `/` is no route. */
  demo: boolean
}

/**
 * @example const ctx = identify(request, server, parts) // ctx.requestId, ctx.clientIp, ctx.route, ctx.active
 */
export function identify(request: Request, server: Server<unknown> | undefined, parts: IdentifyParts): RequestContext {
  const ctx = new RequestContext(request, server)
  const headers = ctx.headers
  ctx.requestId = requestIdFor(headers.get('x-request-id'))
  const peer = canonicalIp(server?.requestIP(request)?.address ?? '')
  ctx.peerIp = peer
  // Without TRUST_PROXY, X-Forwarded-For changes nothing: it is not even read.
  ctx.peerTrusted = !parts.trustProxy.isEmpty && parts.trustProxy.contains(peer)
  ctx.clientIp = ctx.peerTrusted ? parts.trustProxy.clientBehind(peer, headers.get('x-forwarded-for')) : peer
  classify(ctx)
  if (parts.demo && ctx.route === ROUTES.notFound && ctx.path === '/') ctx.route = ROUTES.console
  if (ctx.route.admission === 'publisher') ctx.hasPublishToken = parts.publisherAuth.presentsToken(request)
  resolvePolicy(ctx, parts.table())
  return ctx
}
