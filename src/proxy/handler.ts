/**
 * `ANY /api/v1/:service/*` (SPEC §4) as named phases: route → upstream request → forward →
 * response headers → access log. Each phase lives in its own module in this folder.
 *
 * This is the gateway's hot path, so the server hands these requests straight to
 * `proxyRequest` rather than through Elysia's router and hooks (see README, design notes).
 */
import { type Config, RESERVED_SERVICE_NAMES } from '../config'
import type { Admission } from '../http/admission'
import { type GatewayContext, type IdleTimeoutControl, applyGatewayHeaders } from '../http/context'
import { GatewayError } from '../http/errors'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import { type AccessLog, PROXIED_METHODS } from './access-log'
import { ForwardFailure, type ForwardFailureKind, forward } from './forward'
import { prepareUpstreamHeaders, toDownstreamHeaders } from './headers'
import { PROXY_PREFIX, type ProxyRoute, resolveRoute } from './route'

/** nginx's non-standard status for "client closed request", used only in logs and metrics. */
const CLIENT_CLOSED_REQUEST = 499

const FAILURE_ERRORS: Record<ForwardFailureKind, GatewayError['code']> = {
  connect: 'bad_gateway',
  reset: 'bad_gateway',
  timeout: 'gateway_timeout',
  too_large: 'payload_too_large',
  client_gone: 'bad_gateway',
}

export interface ProxyDependencies {
  config: Config
  admission: Admission
  logger: Logger
  metrics: Metrics
  accessLog: AccessLog
}

/**
 * Whether `url` belongs to the proxy: `/api/v1/<service>...` for any name but the gateway's own.
 * @example isProxyUrl('http://gw/api/v1/runner/jobs') // true; '/api/v1/events/alice' → false
 */
export function isProxyUrl(url: string): boolean {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  if (!url.startsWith(PROXY_PREFIX, start)) return false
  const nameStart = start + PROXY_PREFIX.length
  let nameEnd = nameStart
  while (nameEnd < url.length && url[nameEnd] !== '/' && url[nameEnd] !== '?') nameEnd++
  return nameEnd > nameStart && !RESERVED_SERVICE_NAMES.has(url.slice(nameStart, nameEnd))
}

/** One proxied exchange; never throws: every failure becomes the SPEC §2 JSON error. */
export async function proxyRequest(deps: ProxyDependencies, request: Request, server: IdleTimeoutControl, context: GatewayContext): Promise<Response> {
  const { config, admission } = deps
  let route: ProxyRoute | undefined
  try {
    route = resolveRoute(request.url, config.services)
    if (!PROXIED_METHODS.has(request.method)) {
      throw new GatewayError('bad_request', `method ${request.method} is not proxied`)
    }
    const declaredLength = request.headers.get('content-length')
    if (declaredLength !== null && Number(declaredLength) > config.maxBodyBytes) {
      throw new GatewayError('payload_too_large', `request body of ${declaredLength} bytes exceeds the limit of ${config.maxBodyBytes}`)
    }
    // Slow backends and long-lived streams must outlive Bun's idle timeout; UPSTREAM_TIMEOUT_MS bounds the wait instead.
    server.timeout(request, 0)
    const upstream = await forward({
      url: route.upstreamUrl,
      method: request.method,
      headers: prepareUpstreamHeaders(request.headers, { peerIp: context.peerIp, proto: 'http', requestId: context.requestId }),
      body: request.body,
      hasContentLength: declaredLength !== null,
      maxBodyBytes: config.maxBodyBytes,
      timeoutMs: config.upstreamTimeoutMs,
      clientSignal: request.signal,
    })
    applyGatewayHeaders(context, request, admission.cors, toDownstreamHeaders(upstream.headers))
    deps.accessLog.record(request, context, route, upstream.status)
    return upstream
  } catch (error) {
    const failure = asGatewayError(deps, route, error)
    const status = error instanceof ForwardFailure && error.kind === 'client_gone' ? CLIENT_CLOSED_REQUEST : failure.status
    deps.accessLog.record(request, context, route, status, error instanceof ForwardFailure ? error.kind : undefined)
    return admission.refuse(request, context, failure)
  }
}

function asGatewayError(deps: ProxyDependencies, route: ProxyRoute | undefined, error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  if (error instanceof ForwardFailure) {
    if (route !== undefined && (error.kind === 'connect' || error.kind === 'reset' || error.kind === 'timeout')) {
      deps.metrics.upstreamErrors.inc({ service: route.service.name, kind: error.kind })
    }
    return new GatewayError(FAILURE_ERRORS[error.kind], `${route?.service.name ?? 'backend'}: ${error.message}`)
  }
  deps.logger.error({ err: error }, 'Unexpected proxy failure')
  return new GatewayError('bad_gateway', 'the request could not be proxied')
}
