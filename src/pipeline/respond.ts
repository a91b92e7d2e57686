/**
 * Step 7: the headers every answer carries, added to whatever answered (`gateway-headers.ts`),
 * and the one place a thrown failure becomes the JSON error of the README's "Error format".
 */
import type { CorsPolicy } from '../http/cors'
import { GatewayError, errorResponse } from '../http/errors'
import type { Logger } from '../ops/log'
import type { RequestContext } from '../request/context'
import { applyGatewayHeaders } from '../request/gateway-headers'
import { UpstreamFailure } from '../upstream/failures'

/**
 * Adds the gateway headers to `response` in place; headers it already has (a backend's own) are
 * kept. A route that applied them itself before making its response is left alone.
 */
export function respond(ctx: RequestContext, response: Response, cors: CorsPolicy): void {
  if (!ctx.gatewayHeadersApplied) applyGatewayHeaders(ctx, response.headers, cors)
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
  return errorResponse(failure.code, failure.message, ctx.requestId, failure.headers, failure.details)
}
