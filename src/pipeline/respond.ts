/**
 * Step 7: the headers every answer carries, whoever produced it (README, "Reverse proxy" and
 * "Rate limiting"): `X-Request-Id`, the `RateLimit-*` trio, and the CORS grant. Also the one place
 * a thrown failure becomes the JSON error of the README's "Error format".
 */
import { GatewayError, errorResponse } from '../http/errors'
import type { CorsPolicy } from '../http/cors'
import type { Logger } from '../log'
import { UpstreamFailure } from '../upstream/failures'
import type { RequestContext } from './context'

/**
 * Adds the gateway headers to `response` in place; headers it already has (a backend's own) are
 * kept. A route that applied them itself before making its response (see below) is left alone.
 */
export function respond(ctx: RequestContext, response: Response, cors: CorsPolicy): void {
  if (!ctx.gatewayHeadersApplied) applyGatewayHeaders(ctx, response.headers, cors)
}

/**
 * The gateway headers, added to `headers`. An event stream's route calls this on the headers it
 * makes its `Response` with: reading `response.headers` afterwards would give the Response a
 * `Headers` object of its own, kept for as long as the stream lives (about 240 bytes each).
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

/**
 * The JSON answer for whatever a step threw: a `GatewayError` as it is, an `UpstreamFailure`
 * through the failure table, anything else (a bug) logged and answered 503.
 */
export function failureResponse(ctx: RequestContext, error: unknown, logger: Logger): Response {
  let failure: GatewayError
  if (error instanceof GatewayError) failure = error
  else if (error instanceof UpstreamFailure) {
    ctx.upstreamError = error.kind
    failure = error.toGatewayError()
  } else {
    logger.error({ err: error, request_id: ctx.requestId }, 'Unhandled error')
    failure = new GatewayError('service_unavailable', 'the gateway failed to handle this request')
  }
  return errorResponse(failure.code, failure.message, ctx.requestId, failure.headers)
}
