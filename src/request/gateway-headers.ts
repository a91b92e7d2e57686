/**
 * The headers every answer carries, whoever produced it (README, "Reverse proxy" and "Rate
 * limiting"): `X-Request-Id`, the `RateLimit-*` trio of the bucket that decided, and the CORS
 * grant. The respond step adds them to each response; an event stream and a WebSocket's 101
 * get them before their response exists.
 */
import type { CorsPolicy } from '../http/cors'
import type { RequestContext } from './context'

/**
 * The gateway headers, added to `headers`, and the context marked so the respond step leaves
 * them. An event stream's route calls this on the headers it makes its `Response` with: reading
 * `response.headers` afterwards would give the Response a `Headers` object of its own, kept for
 * as long as the stream lives (about 240 bytes each).
 */
export function applyGatewayHeaders(ctx: RequestContext, headers: Headers, cors: CorsPolicy): void {
  ctx.gatewayHeadersApplied = true
  writeGatewayHeaders(ctx, headers, cors)
}

/**
 * The gateway headers, written onto `headers` without marking the context: for a WebSocket's
 * 101, which Bun answers (a refusal after it still goes through the respond step).
 */
export function writeGatewayHeaders(ctx: RequestContext, headers: Headers, cors: CorsPolicy): void {
  if (!headers.has('x-request-id')) headers.set('x-request-id', ctx.requestId)
  const rate = ctx.rate
  if (rate !== undefined) {
    headers.set('ratelimit-limit', String(rate.limit))
    headers.set('ratelimit-remaining', String(rate.remaining))
    headers.set('ratelimit-reset', String(rate.resetSeconds))
  }
  // A preflight's answer carries its own grant.
  if (!ctx.isPreflight) cors.decorate(ctx.headers.get('origin'), headers)
}
