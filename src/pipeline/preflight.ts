/**
 * Step 2: CORS preflights (an `OPTIONS` with `Origin` and `Access-Control-Request-Method`) are
 * the gateway's to answer, before the rate limit: a browser shown a 429 on its preflight could
 * not read the real answer to the request that follows. Any other `OPTIONS` is routed.
 */
import { CorsPolicy } from '../http/cors'
import type { RequestContext } from '../request/context'

/** The preflight's answer, or undefined when the request is not one. */
export function preflight(ctx: RequestContext, cors: CorsPolicy): Response | undefined {
  if (!CorsPolicy.isPreflight(ctx.request)) return undefined
  ctx.isPreflight = true
  ctx.answeredEarly = true
  return cors.preflight(ctx.request, ctx.requestId)
}
