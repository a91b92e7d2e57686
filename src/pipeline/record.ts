/**
 * Step 8, the last one, run for every request, early exits included: the access log line and
 * the request metrics, in this one place (README, "Logging" and "Metrics").
 */
import type { Metrics } from '../ops/metrics'
import { PROXIED_METHODS } from '../proxy/route'
import { FAILURES } from '../upstream/failures'
import { pathOn } from '../upstream/upstream'
import type { AccessLevel, AccessLog } from './access-log'
import type { RequestContext } from '../request/context'

export interface RecordParts {
  metrics: Metrics
  accessLog: AccessLog
}

/**
 * @param status the status of the response handed to the client.
 * @example record(ctx, response.status, parts)
 */
export function record(ctx: RequestContext, status: number, parts: RecordParts): void {
  const failure = ctx.upstreamError
  const recorded = failure === undefined ? status : (FAILURES[failure].loggedStatus ?? status)
  const seconds = (performance.now() - ctx.startedAt) / 1000
  const method = ctx.method
  const kind = ctx.route.kind
  const proxied = kind === 'proxy' && !ctx.answeredEarly
  // Who answered: the proxied service (`unknown` when none is registered under that name), the
  // event routes, or the gateway itself (its own routes, and refusals before any route ran).
  const service = proxied ? (ctx.upstream?.name ?? 'unknown') : kind === 'events' && !ctx.answeredEarly ? 'events' : 'gateway'
  parts.metrics.observe(service, PROXIED_METHODS.has(method) ? method : 'OTHER', recorded, seconds)
  if (recorded === 429 && ctx.answeredEarly) parts.metrics.rateLimited.inc()

  const { accessLog } = parts
  // Probes and scrapes would otherwise fill the log: they are logged at debug.
  const level: AccessLevel = kind === 'ops' ? 'debug' : recorded >= 500 ? 'warn' : 'info'
  if (!accessLog.enabled(level)) return
  // The instance of the last attempt; none when the service had no instance to offer (all ejected).
  const instance = proxied ? ctx.instance : undefined
  accessLog.line(
    ctx,
    level,
    proxied ? 'Proxied request' : 'Request',
    instance === undefined ? accessLog.serviceFields(service) : accessLog.serviceFields(service, instance.url),
    instance === undefined ? ctx.path : pathOn(instance, ctx.url.slice(ctx.restStart, ctx.pathEnd)),
    recorded,
    Math.round(seconds * 1000),
    proxied ? ctx.attempts : undefined,
  )
}
