/**
 * The proxy's last phase: one JSON log line per proxied request (SPEC §4) and the request
 * metrics. Request headers are never among the fields, so `Authorization` and `Cookie` values
 * cannot reach the log.
 */
import type { GatewayContext } from '../http/context'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import type { ForwardFailureKind } from './forward'
import type { ProxyRoute } from './route'

/** SPEC §4: the methods the proxy forwards; any other is counted as `OTHER`. */
export const PROXIED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

export class AccessLog {
  /**
   * A child logger per service, with `service` and `target_url` bound: pino serializes bindings
   * once, when the child is made, instead of on every line.
   */
  private readonly byService = new Map<string, Logger>()

  constructor(
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /**
   * @example accessLog.record(request, context, route, 200)
   */
  record(request: Request, context: GatewayContext, route: ProxyRoute | undefined, status: number, upstreamError?: ForwardFailureKind): void {
    const seconds = (performance.now() - context.startedAt) / 1000
    const method = request.method
    this.metrics.observe(route?.service.name ?? 'unknown', PROXIED_METHODS.has(method) ? method : 'OTHER', status, seconds)
    const level = status >= 500 ? 'warn' : 'info'
    if (!this.logger.isLevelEnabled(level)) return
    this.loggerFor(route)[level](
      {
        method,
        path: route?.upstreamPath,
        status,
        duration_ms: Math.round(seconds * 1000),
        request_id: context.requestId,
        client_ip: context.clientIp,
        upstream_error: upstreamError,
      },
      'Proxied request',
    )
  }

  private loggerFor(route: ProxyRoute | undefined): Logger {
    const service = route?.service.name ?? 'unknown'
    let child = this.byService.get(service)
    if (child === undefined) {
      child = this.logger.child({ service, target_url: route?.service.url })
      this.byService.set(service, child)
    }
    return child
  }
}
