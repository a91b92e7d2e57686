/**
 * Composition of the gateway: the parts, the request pipeline over them, and the Elysia app
 * that hosts the gateway's own routes. Nothing else lives here.
 */
import { Elysia } from 'elysia'
import type { Server } from 'bun'
import { Authenticator } from './auth/authenticator'
import { type Cluster, joinCluster } from './cluster/cluster'
import { WorkerLink } from './cluster/worker'
import type { Config } from './config'
import type { Broker } from './events/broker'
import { createBroker } from './events/create-broker'
import { Hub } from './events/hub'
import { eventsRoutes } from './events/plugin'
import { PublisherAuth } from './events/publisher-auth'
import { CorsPolicy } from './http/cors'
import { GatewayError } from './http/errors'
import { loadTls } from './http/tls'
import type { Logger } from './log'
import { Lifecycle } from './ops/lifecycle'
import { Metrics } from './ops/metrics'
import { opsRoutes } from './ops/plugin'
import { AccessLog } from './pipeline/access-log'
import { WebSocketBridge } from './proxy/websocket'
import { contextOf } from './pipeline/context'
import { Pipeline } from './pipeline/pipeline'
import { failureResponse } from './pipeline/respond'
import { RedisTokenBucketLimiter } from './ratelimit/redis-token-bucket'
import { type RateLimiter, TokenBucketLimiter } from './ratelimit/token-bucket'
import { Upstreams } from './upstream/upstream'
import { VERSION } from './version'

/** Idle keep-alive client connections close after this long (Elysia's own default). */
const CLIENT_IDLE_TIMEOUT_SECONDS = 30
/** How often rate-limit buckets that refilled to full are forgotten. */
const LIMITER_SWEEP_INTERVAL_MS = 60_000

export interface GatewayOptions {
  config: Config
  logger: Logger
  /** This process is worker `workerId` of a supervisor (README, "Workers"); absent for a single process. */
  workerId?: number
}

export interface Gateway {
  hub: Hub
  broker: Broker
  /** Cluster mode's Redis link and presence; null for the embedded single process. */
  cluster: Cluster | null
  lifecycle: Lifecycle
  metrics: Metrics
  /** Answers one request as the server does (tests call it for requests the listener would no longer take). */
  handle(request: Request, server?: Server<unknown>): Promise<Response | undefined>
  /** Proxied WebSocket sessions. */
  websockets: WebSocketBridge
  /** The link to the supervisor, when this process is one of its workers. */
  worker: WorkerLink | null
  /** Starts listening; `port` overrides `config.port` (tests pass 0). */
  listen(port?: number): Server<unknown>
  /** Drain and stop (README, "Operations"). Resolves with whether in-flight requests finished in time. */
  shutdown(drainMs?: number): Promise<boolean>
}

/**
 * @example const gateway = createGateway({ config, logger }); gateway.listen()
 * @throws ConfigError when the TLS files cannot serve (README, "TLS").
 */
export function createGateway({ config, logger, workerId }: GatewayOptions): Gateway {
  const tls = config.tls === null ? undefined : loadTls(config.tls)
  const metrics = new Metrics()
  const worker = workerId === undefined ? null : new WorkerLink(workerId, metrics)
  const hub = new Hub(config.events.heartbeatMs, config.events.buffer, metrics, logger)
  const cluster = joinCluster(config, hub, logger, metrics)
  const broker = createBroker(config, hub, metrics, logger, cluster)
  const upstreams = new Upstreams(config, metrics, logger)
  const lifecycle = new Lifecycle()
  // Streams close at once on shutdown, so their clients reconnect to another instance and replay.
  lifecycle.onShutdown(() => hub.closeAll('shutdown'))
  // Local buckets always exist: alone they are the limiter; in cluster mode they decide while Redis cannot.
  const localLimiter = config.rateLimit > 0 ? new TokenBucketLimiter({ capacity: config.rateLimitBurst, perMinute: config.rateLimit }) : null
  const limiterSweeper = localLimiter === null ? undefined : setInterval(() => localLimiter.sweep(), LIMITER_SWEEP_INTERVAL_MS).unref()
  const limiter: RateLimiter | null =
    localLimiter !== null && cluster !== null
      ? new RedisTokenBucketLimiter({ link: cluster.link, prefix: cluster.prefix, capacity: config.rateLimitBurst, perMinute: config.rateLimit, fallback: localLimiter })
      : localLimiter

  // The gateway's own routes, on requests the pipeline has identified, limited and authenticated.
  // standardHostname: false — Elysia otherwise looks for the path after character 11 of the URL and
  // mis-routes requests whose Host is shorter than four characters (`Host: gw`).
  // strictPath: true — Elysia must route exactly the path the pipeline classified: loosely, it would
  // hand `POST /api/v1/events/alice/` to the publish route after the pipeline saw no publish.
  const cors = new CorsPolicy(config.corsOrigins)
  const authenticator = Authenticator.create(config.auth, cors, logger, metrics)
  const websockets = new WebSocketBridge(metrics, logger, cors)
  // Sessions close at once with 1001 on both sides, like event streams.
  lifecycle.onShutdown(() => websockets.closeAll())
  const app = new Elysia({ strictPath: true, handler: { standardHostname: false } })
    // Registered before the routes: Elysia applies a hook only to routes added after it.
    .onError({ as: 'global' }, ({ request, code, error }) => routeFailure(request, code, error, logger))
    .use(
      opsRoutes({
        version: VERSION,
        lifecycle,
        // A worker's /metrics reports every worker, summed by the supervisor.
        exposition: worker === null ? () => metrics.exposition() : () => worker.exposition(),
        redis: cluster === null ? null : () => cluster.link.isUp,
        workerId: worker?.id ?? null,
      }),
    )
    .use(eventsRoutes({ config: config.events, broker, hub, hitl: upstreams.get('hitl')!, logger, metrics, cors, authenticator }))
  const pipeline = new Pipeline({
    config,
    cors,
    limiter,
    publisherAuth: new PublisherAuth(config.events.publishToken),
    authenticator,
    upstreams,
    websockets,
    metrics,
    accessLog: new AccessLog(logger),
    logger,
    app: (request) => app.handle(request),
  })

  let server: Server<unknown> | undefined
  return {
    hub,
    broker,
    cluster,
    lifecycle,
    metrics,
    websockets,
    worker,
    handle: (request, via = server) => pipeline.handle(request, via),
    listen(port = config.port) {
      server = Bun.serve({
        port,
        hostname: config.host,
        // HTTPS only, with Bun's native TLS, when TLS_CERT_FILE and TLS_KEY_FILE are set.
        tls,
        // Workers share the port; the kernel spreads new connections over them (Linux).
        reusePort: worker !== null,
        idleTimeout: CLIENT_IDLE_TIMEOUT_SECONDS,
        // Bodies are bounded by MAX_BODY_BYTES in the pipeline, with a JSON 413; Bun's own limit would answer first and bare.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        fetch: (request, via) => pipeline.handle(request, via),
        websocket: websockets.handlers,
      })
      return server
    },
    async shutdown(drainMs) {
      clearInterval(limiterSweeper)
      const drained = server === undefined ? true : await lifecycle.shutdown(server, drainMs)
      hub.stop()
      await broker.close()
      upstreams.close()
      authenticator?.close()
      return drained
    },
  }
}

/** An error thrown in (or before) an Elysia route, as the pipeline's JSON error. */
function routeFailure(request: Request, code: unknown, error: unknown, logger: Logger): Response {
  const ctx = contextOf(request)
  if (code === 'NOT_FOUND') return failureResponse(ctx, new GatewayError('not_found', `no route for ${request.method} ${ctx.path}`), logger)
  if (code === 'PARSE' || code === 'VALIDATION') return failureResponse(ctx, new GatewayError('bad_request', String((error as Error).message)), logger)
  return failureResponse(ctx, error, logger)
}
