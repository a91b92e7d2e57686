/**
 * Prometheus metrics (prom-client), one registry per gateway so tests can run several.
 * Label values are bounded: unknown services count as `unknown`, the gateway's own routes as `gateway`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { ScrapeTimeHistogram } from './scrape-time-histogram'

interface RequestCount {
  labels: { service: string; method: string; status: string }
  count: number
}

export class Metrics {
  readonly registry = new Registry()

  /**
   * Request counts by service, method and status, kept in plain Maps and handed to prom-client at
   * scrape time: labelled `inc()` hashes its label object on every request, on the hot path.
   */
  private readonly requestCounts = new Map<string, Map<string, Map<number, RequestCount>>>()

  readonly requests: Counter<'service' | 'method' | 'status'> = new Counter({
    name: 'gateway_requests_total',
    help: 'Requests answered, by service, method and status.',
    labelNames: ['service', 'method', 'status'] as const,
    registers: [this.registry],
    collect: () => {
      this.requests.reset()
      for (const byMethod of this.requestCounts.values()) {
        for (const byStatus of byMethod.values()) for (const { labels, count } of byStatus.values()) this.requests.inc(labels, count)
      }
    },
  })

  readonly requestDuration = new ScrapeTimeHistogram(
    'gateway_request_duration_seconds',
    "Time from the request's arrival to its response headers.",
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  )

  readonly upstreamErrors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Failed exchanges with a backend, by service and kind (connect, tls, reset, timeout).',
    labelNames: ['service', 'kind'] as const,
    registers: [this.registry],
  })

  readonly upstreamRetries = new Counter({
    name: 'gateway_upstream_retries_total',
    help: 'Requests sent again to another instance, by service and reason (connect, tls, reset).',
    labelNames: ['service', 'reason'] as const,
    registers: [this.registry],
  })

  readonly upstreamEjections = new Counter({
    name: 'gateway_upstream_ejections_total',
    help: 'Instances taken out of rotation after CIRCUIT_FAILURES consecutive failures, by service and instance.',
    labelNames: ['service', 'instance'] as const,
    registers: [this.registry],
  })

  readonly upstreamHealthy = new Gauge({
    name: 'gateway_upstream_healthy',
    help: 'Whether an instance is in rotation (1) or ejected (0), by service and instance (its URL as configured).',
    labelNames: ['service', 'instance'] as const,
    registers: [this.registry],
  })

  readonly websocketSessions = new Gauge({
    name: 'gateway_websocket_sessions',
    help: 'WebSocket sessions open on this process.',
    registers: [this.registry],
  })

  /** Relayed WebSocket messages, counted in plain numbers per message and handed over at scrape time. */
  readonly websocketMessageCounts = { to_backend: 0, to_client: 0 }

  readonly websocketMessages: Counter<'direction'> = new Counter({
    name: 'gateway_websocket_messages_total',
    help: 'WebSocket messages relayed, by direction (to_backend, to_client).',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: () => {
      this.websocketMessages.reset()
      for (const [direction, count] of Object.entries(this.websocketMessageCounts)) this.websocketMessages.inc({ direction }, count)
    },
  })

  readonly rateLimited = new Counter({
    name: 'gateway_rate_limited_total',
    help: 'Requests refused with 429 by the rate limiter.',
    registers: [this.registry],
  })

  readonly sseConnections = new Gauge({
    name: 'gateway_sse_connections',
    help: 'Event streams open on this process.',
    registers: [this.registry],
  })

  readonly sseEventsPublished = new Counter({
    name: 'gateway_sse_events_published_total',
    help: 'Events accepted by the publish API (duplicates of a retained id not counted).',
    registers: [this.registry],
  })

  readonly sseEventsDelivered = new Counter({
    name: 'gateway_sse_events_delivered_total',
    help: 'Live events queued to event streams (one per stream).',
    registers: [this.registry],
  })

  readonly sseSlowDisconnects = new Counter({
    name: 'gateway_sse_slow_disconnects_total',
    help: 'Event streams closed because more than SSE_BUFFER events waited unsent.',
    registers: [this.registry],
  })

  /** Questions (README, "Questions"): published, and how each closed. */
  readonly questions = new Counter({
    name: 'gateway_questions_total',
    help: 'Questions published, and questions closed by outcome (answered, expired, cancelled).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  readonly questionOpen = new Histogram({
    name: 'gateway_question_open_seconds',
    help: 'Time from a question\'s publish to its close (answered, expired or cancelled).',
    buckets: [1, 5, 15, 30, 60, 300, 900, 3600, 14400, 86400],
    registers: [this.registry],
  })

  readonly redisConnected = new Gauge({
    name: 'gateway_redis_connected',
    help: 'Cluster mode: 1 while this process is connected to Redis, else 0.',
    registers: [this.registry],
  })

  readonly redisCommandErrors = new Counter({
    name: 'gateway_redis_command_errors_total',
    help: 'Cluster mode: Redis commands that failed, by kind (timeout, connection, server).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  readonly redisCommandDuration = new ScrapeTimeHistogram(
    'gateway_redis_command_duration_seconds',
    'Cluster mode: time from sending a Redis command to its reply.',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    this.registry,
  )

  readonly clusterEventsRelayed = new Counter({
    name: 'gateway_cluster_events_relayed_total',
    help: 'Cluster mode: events published through another instance and received here.',
    registers: [this.registry],
  })

  readonly authFailures = new Counter({
    name: 'gateway_auth_failures_total',
    help: 'Requests refused by authentication, by reason (missing, invalid, expired, forbidden).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })

  /** Policy file reloads (README, "Policies"), by outcome. */
  readonly configReloads = configReloadsCounter(this.registry)

  readonly jwksFetches = new Counter({
    name: 'gateway_auth_jwks_fetches_total',
    help: 'Fetches of the AUTH_JWKS_URL key set, by outcome (ok, error).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  constructor() {
    collectDefaultMetrics({ register: this.registry })
    // Every reason shows from the first scrape, at 0, so alerts on a rate have a series to watch.
    for (const reason of ['missing', 'invalid', 'expired', 'forbidden']) this.authFailures.inc({ reason }, 0)
    for (const outcome of ['published', 'answered', 'expired', 'cancelled']) this.questions.inc({ outcome }, 0)
  }

  /** Records one answered request. */
  observe(service: string, method: string, status: number, seconds: number): void {
    // Nested maps, not one `service method status` key: no string is built per request.
    let byMethod = this.requestCounts.get(service)
    if (byMethod === undefined) this.requestCounts.set(service, (byMethod = new Map()))
    let byStatus = byMethod.get(method)
    if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()))
    const entry = byStatus.get(status)
    if (entry !== undefined) entry.count++
    else byStatus.set(status, { labels: { service, method, status: String(status) }, count: 1 })
    this.requestDuration.observe(seconds)
  }

  /** The text exposition for `GET /metrics` (of this process alone). */
  async exposition(): Promise<Response> {
    return new Response(await this.registry.metrics(), { headers: { 'content-type': this.registry.contentType } })
  }
}

/**
 * `gateway_config_reloads_total{outcome}`, both outcomes from 0. Its own function: under
 * `WORKERS` the supervisor counts reloads (once per reload, not once per worker) in a registry
 * of its own, summed with the workers' figures.
 * @example configReloadsCounter(registry).inc({ outcome: 'applied' })
 */
export function configReloadsCounter(registry: Registry): Counter<'outcome'> {
  const counter = new Counter({
    name: 'gateway_config_reloads_total',
    help: 'Policy file reloads (SIGHUP), by outcome (applied, rejected).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  for (const outcome of ['applied', 'rejected']) counter.inc({ outcome }, 0)
  return counter
}
