/**
 * The handle step of a proxied request (README, "Reverse proxy"): the request headers a backend
 * receives, and the exchange through the upstream module (which also drops the response's
 * hop-by-hop headers). Everything before (route) and after (gateway headers, access log) is the
 * pipeline's.
 *
 * This is the gateway's hot path: the pipeline calls it directly, with no framework's router
 * or hooks in between (README, "Design notes").
 */
import { withoutQueryToken } from '../auth/presented-token'
import type { RequestContext } from '../request/context'
import { applyHeaderRules } from '../http/header-rules'
import { prepareUpstreamHeaders } from './headers'

/**
 * Forwards the request to the service the route step chose and resolves with its response,
 * under the route's policy (limits, header rules both ways).
 * Not an `async` function: it adds no promise of its own to the one the upstream returns.
 * @param scheme how the client reached the gateway (`X-Forwarded-Proto`).
 * @throws UpstreamFailure (as a rejection) when the exchange fails.
 */
export function proxyRequest(ctx: RequestContext, scheme: 'http' | 'https'): Promise<Response> {
  const request = ctx.request
  const policy = ctx.active!.policy
  // Slow backends and long-lived streams must outlive Bun's idle timeout; the route's timeout bounds the wait instead.
  ctx.keepOpen()
  const headers = prepareUpstreamHeaders(ctx.headers, ctx, scheme)
  if (policy.requestHeaders !== null) applyHeaderRules(headers, policy.requestHeaders)
  return ctx.upstream!.call({
    method: ctx.method,
    target: targetOf(ctx),
    headers,
    body: request.body,
    declaredLength: ctx.declaredLength,
    client: request,
    record: ctx,
    limits: policy,
    responseHeaders: policy.responseHeaders,
  })
}

/**
 * The path after the service, and the query, as received. With authentication configured a
 * token in the query is the gateway's, never a backend's, whatever the route's policy.
 */
export function targetOf(ctx: RequestContext): string {
  const target = ctx.url.slice(ctx.restStart)
  return ctx.table!.policies.global.auth === 'off' ? target : withoutQueryToken(target)
}
