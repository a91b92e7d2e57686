/**
 * Step 1: who is asking, and for what. Names the request (`X-Request-Id`), finds the client
 * (the socket peer, or through `TRUST_PROXY`), classifies the route once, and checks a
 * publisher's token once (the rate limit and the authenticate step both need it).
 */
import type { Server } from 'bun'
import { type TrustedProxies, canonicalIp } from '../http/client-ip'
import { requestIdFor } from '../http/request-id'
import type { PublisherAuth } from '../events/publisher-auth'
import { RequestContext } from './context'
import { classify } from './routes'

export interface IdentifyParts {
  trustProxy: TrustedProxies
  publisherAuth: PublisherAuth
}

/**
 * @example const ctx = identify(request, server, parts) // ctx.requestId, ctx.clientIp, ctx.kind
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
  if (ctx.isPublish) ctx.hasPublishToken = parts.publisherAuth.presentsToken(request)
  return ctx
}
