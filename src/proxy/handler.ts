/**
 * The handle step of a proxied request (README, "Reverse proxy"): the request headers a backend
 * receives, and the exchange through the upstream module (which also drops the response's
 * hop-by-hop headers). Everything before (route) and after (gateway headers, access log) is the
 * pipeline's.
 *
 * This is the gateway's hot path: the pipeline calls it directly, never through Elysia's router
 * and hooks (README, "Design notes").
 */
import { withoutQueryToken } from '../auth/presented-token'
import type { RequestContext } from '../pipeline/context'
import { prepareUpstreamHeaders } from './headers'

/**
 * Forwards the request to the service the route step chose and resolves with its response.
 * Not an `async` function: it adds no promise of its own to the one the upstream returns.
 * @param scheme how the client reached the gateway (`X-Forwarded-Proto`).
 * @throws UpstreamFailure (as a rejection) when the exchange fails.
 */
export function proxyRequest(ctx: RequestContext, scheme: 'http' | 'https'): Promise<Response> {
  const request = ctx.request
  const principal = ctx.principal
  // Slow backends and long-lived streams must outlive Bun's idle timeout; UPSTREAM_TIMEOUT_MS bounds the wait instead.
  ctx.keepOpen()
  const target = ctx.url.slice(ctx.restStart)
  return ctx.upstream!.call({
    method: ctx.method,
    // With authentication on, a token in the query is the gateway's, never the backend's.
    target: principal === undefined ? target : withoutQueryToken(target),
    headers: prepareUpstreamHeaders(ctx.headers, ctx, scheme),
    body: request.body,
    declaredLength: ctx.declaredLength,
    client: request,
    record: ctx,
  })
}
