/**
 * Composition of the gateway: the parts, the policy table, the request pipeline over them, and
 * the listener. Nothing else lives here.
 */
import type { Server } from 'bun'
import { Authenticator } from './auth/authenticator'
import { PublisherAuth } from './auth/publisher-auth'
import { type Cluster, joinCluster } from './cluster/cluster'
import { type PolicyChanges, type PolicySet, type RateLimitPolicy, changesBetween, policiesOfEnvironment } from './config/policies'
import type { Config } from './config/settings'
import { loadTls } from './config/tls'
import type { Broker } from './events/broker'
import { createBroker } from './events/create-broker'
import { Hub } from './events/hub'
import { eventsHandlers } from './events/routes'
import { CorsPolicy } from './http/cors'
import type { Logger } from './ops/log'
import { Lifecycle } from './ops/lifecycle'
import { Metrics } from './ops/metrics'
import { opsHandlers } from './ops/routes'
import { AccessLog } from './pipeline/access-log'
import { Pipeline } from './pipeline/pipeline'
import { WebSocketBridge } from './proxy/websocket'
import { Limiters } from './ratelimit/limiters'
import { type PolicyTable, buildPolicyTable } from './request/policy-table'
import { Upstreams } from './upstream/upstream'
import { VERSION } from './ops/version'
import { WorkerLink } from './workers/worker'

/** Idle keep-alive client connections close after this long. */
const CLIENT_IDLE_TIMEOUT_SECONDS = 30

export interface GatewayOptions {
  config: Config
  logger: Logger
  /** The policies to start with (README, "Policies"); absent: the environment's alone. */
  policies?: PolicySet
  /** This process is worker `workerId` of a supervisor (README, "Workers"); absent for a single process. */
  workerId?: number
  /** `api-gateway demo`: the handler of its console page at `/` (README, "Demo"); absent: `/` is 404. */
  consolePage?: () => Response
}

export interface Gateway {
  hub: Hub
  broker: Broker
  /** Cluster mode's Redis link and presence; null for the embedded single process. */
  cluster: Cluster | null
  lifecycle: Lifecycle
  metrics: Metrics
  /** The policies requests get from now on. */
  readonly policies: PolicySet
  /**
   * Swaps in a new policy set, whole: requests that start from now on see only it, requests in
   * flight finish under the old one, and nothing open is closed.
   */
  applyPolicies(policies: PolicySet): PolicyChanges
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
export function createGateway({ config, logger, workerId, consolePage, policies = policiesOfEnvironment(config) }: GatewayOptions): Gateway {
  const tls = config.tls === null ? undefined : loadTls(config.tls)
  const metrics = new Metrics()
  const worker = workerId === undefined ? null : new WorkerLink(workerId, metrics)
  const hub = new Hub(config.events.heartbeatMs, config.events.buffer, metrics, logger)
  const cluster = joinCluster(config, hub, logger, metrics)
  const upstreams = new Upstreams(config, metrics, logger)
  // Local buckets always exist: alone they are the limiter; in cluster mode they decide while Redis cannot.
  const limiters = new Limiters(cluster === null ? null : { link: cluster.link, prefix: cluster.prefix })
  const lifecycle = new Lifecycle()
  // Streams close at once on shutdown, so their clients reconnect to another instance and replay.
  lifecycle.onShutdown(() => hub.closeAll('shutdown'))

  let table: PolicyTable = tableOf(policies, upstreams, limiters, config.events.hitlResponsePath)
  const hitl = () => table.services.get('hitl')!.upstream
  const broker = createBroker({ config, hub, metrics, logger, cluster, hitl })
  const cors = new CorsPolicy(config.corsOrigins)
  const authenticator = Authenticator.create(config.auth, cors, logger, metrics)
  const websockets = new WebSocketBridge(metrics, logger, cors)
  // Sessions close at once with 1001 on both sides, like event streams.
  lifecycle.onShutdown(() => websockets.closeAll())
  const pipeline = new Pipeline({
    config,
    cors,
    publisherAuth: new PublisherAuth(config.events.publishToken),
    authenticator,
    table: () => table,
    handlers: {
      ...opsHandlers({
        version: VERSION,
        lifecycle,
        // A worker's /metrics reports every worker, summed by the supervisor.
        exposition: worker === null ? () => metrics.exposition() : () => worker.exposition(),
        redis: cluster === null ? null : () => cluster.link.isUp,
        workerId: worker?.id ?? null,
      }),
      ...eventsHandlers({ config: config.events, broker, hub, hitl, logger, metrics, cors }),
      ...(consolePage === undefined ? {} : { console: consolePage }),
    },
    websockets,
    metrics,
    accessLog: new AccessLog(logger),
    logger,
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
    get policies() {
      return table.policies
    },
    applyPolicies(next) {
      const changes = changesBetween(table.policies, next)
      table = tableOf(next, upstreams, limiters, config.events.hitlResponsePath)
      return changes
    },
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
        // Bodies are bounded by the policy's max_body_bytes in the pipeline, with a JSON 413; Bun's own limit would answer first and bare.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        fetch: (request, via) => pipeline.handle(request, via),
        websocket: websockets.handlers,
      })
      return server
    },
    async shutdown(drainMs) {
      const drained = server === undefined ? true : await lifecycle.shutdown(server, drainMs)
      hub.stop()
      await broker.close()
      upstreams.close()
      limiters.close()
      authenticator?.close()
      return drained
    },
  }
}

/** The table of `policies`, over the upstreams' instances and the limiters' buckets that outlive it. */
function tableOf(policies: PolicySet, upstreams: Upstreams, limiters: Limiters, hitlResponsePath: string): PolicyTable {
  const byName = upstreams.apply(policies)
  const table = buildPolicyTable(policies, { upstreamFor: (service) => byName.get(service.name)!, limiterFor: (limit) => limiters.limiterFor(limit), hitlResponsePath })
  limiters.retainOnly(bucketsOf(policies))
  return table
}

/** Every bucket name a policy set uses. */
function bucketsOf(policies: PolicySet): Set<string> {
  const buckets = new Set<string>()
  const add = (limit: RateLimitPolicy | null) => limit !== null && buckets.add(limit.bucket)
  add(policies.global.rateLimit)
  for (const service of policies.services.values()) {
    add(service.policy.rateLimit)
    for (const route of service.routes) add(route.policy.rateLimit)
  }
  return buckets
}
