/**
 * What admission learns about a request before any route runs, and the headers every answer
 * carries because of it (request id, rate-limit state, CORS grant).
 */
import type { CorsPolicy } from './cors'
import type { RateDecision } from '../ratelimit/token-bucket'

/** The one server control the long-lived routes need: lifting Bun's idle timeout per request. */
export interface IdleTimeoutControl {
  timeout(request: Request, seconds: number): void
}

export interface GatewayContext {
  requestId: string
  /** After `TRUST_PROXY` resolution; canonical spelling (no `::ffff:` prefix). */
  clientIp: string
  /** The socket peer, before `TRUST_PROXY` resolution. */
  peerIp: string
  /** `performance.now()` at arrival. */
  startedAt: number
  /** Absent when the route is not rate limited or limiting is off. */
  rate?: RateDecision
}

/**
 * Adds `X-Request-Id`, `RateLimit-*` and the CORS grant to a response's headers.
 * Headers the response already has (a backend's own CORS grant, say) are kept.
 */
export function applyGatewayHeaders(context: GatewayContext, request: Request, cors: CorsPolicy, headers: Headers): Headers {
  applyAdmissionHeaders(context, headers)
  cors.decorate(request.headers.get('origin'), headers)
  return headers
}

/** `X-Request-Id` and the `RateLimit-*` trio (SPEC §4, §5). */
export function applyAdmissionHeaders(context: GatewayContext, headers: Headers): Headers {
  if (!headers.has('x-request-id')) headers.set('x-request-id', context.requestId)
  const rate = context.rate
  if (rate !== undefined) {
    headers.set('ratelimit-limit', String(rate.limit))
    headers.set('ratelimit-remaining', String(rate.remaining))
    headers.set('ratelimit-reset', String(rate.resetSeconds))
  }
  return headers
}
