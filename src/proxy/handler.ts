/**
 * The handle step of a proxied request (README, "Reverse proxy"): the upstream request headers,
 * the exchange through the upstream module, and the response headers. Everything before (route)
 * and after (gateway headers, access log) is the pipeline's.
 *
 * This is the gateway's hot path: the pipeline calls it directly, never through Elysia's router
 * and hooks (README, "Design notes").
 */
import type { RequestContext } from '../pipeline/context'
import { prepareUpstreamHeaders, toDownstreamHeaders } from './headers'

/**
 * Forwards the request to the service the route step chose and resolves with its response.
 * @throws UpstreamFailure when the exchange fails.
 */
export async function proxyRequest(ctx: RequestContext): Promise<Response> {
  const request = ctx.request
  // Slow backends and long-lived streams must outlive Bun's idle timeout; UPSTREAM_TIMEOUT_MS bounds the wait instead.
  ctx.keepOpen()
  const response = await ctx.upstream!.call({
    method: request.method,
    path: ctx.url.slice(ctx.restStart, ctx.pathEnd),
    query: ctx.url.slice(ctx.pathEnd),
    headers: prepareUpstreamHeaders(request.headers, ctx.peerIp, 'http', ctx.requestId),
    body: request.body,
    declaredLength: ctx.declaredLength,
    client: request,
  })
  toDownstreamHeaders(response.headers)
  return response
}
