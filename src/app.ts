/**
 * Composition of the gateway: admission first, then the proxy (the hot path, straight from the
 * server) or the Elysia app (ops and events routes), and one place that maps errors to SPEC §2
 * JSON. Nothing else lives here.
 */
import { Elysia } from 'elysia'
import type { Server } from 'bun'
import type { Config } from './config'
import { MemoryBroker } from './events/memory-broker'
import { Hub } from './events/hub'
import { EVENTS_PREFIX, type EventsDependencies, eventsRoutes } from './events/plugin'
import { PublisherAuth } from './events/publisher-auth'
import { Admission, pathOf } from './http/admission'
import type { GatewayContext, IdleTimeoutControl } from './http/context'
import { GatewayError } from './http/errors'
import type { Logger } from './log'
import { Lifecycle } from './ops/lifecycle'
import { Metrics } from './ops/metrics'
import { opsRoutes } from './ops/plugin'
import { AccessLog } from './proxy/access-log'
import { isProxyUrl, proxyRequest } from './proxy/handler'
import { VERSION } from './version'

/** Idle keep-alive client connections close after this long (Elysia's own default). */
const CLIENT_IDLE_TIMEOUT_SECONDS = 30

export interface GatewayOptions {
  config: Config
  logger: Logger
}

export interface Gateway {
  app: ReturnType<typeof buildApp>
  admission: Admission
  hub: Hub
  broker: MemoryBroker
  lifecycle: Lifecycle
  metrics: Metrics
  /** Answers one request as the server does (tests call it for requests the listener would no longer take). */
  handle(request: Request, server?: Server<unknown>): Response | Promise<Response>
  /** Starts listening; `port` overrides `config.port` (tests pass 0). */
  listen(port?: number): Server<unknown>
  /** SPEC §8: drain and stop. Resolves with whether in-flight requests finished in time. */
  shutdown(drainMs?: number): Promise<boolean>
}

/**
 * @example const gateway = createGateway({ config, logger }); gateway.listen()
 */
export function createGateway({ config, logger }: GatewayOptions): Gateway {
  const metrics = new Metrics()
  const publisherAuth = new PublisherAuth(config.events.publishToken)
  const admission = new Admission(config, metrics, (request, path) => publisherAuth.isAuthenticatedPublish(request, path))
  const hub = new Hub(config.events.heartbeatMs, config.events.buffer, metrics, logger)
  const broker = new MemoryBroker(hub, config.events, metrics)
  const lifecycle = new Lifecycle()
  // SPEC §8: streams close at once so their clients reconnect to another instance and replay.
  lifecycle.onShutdown(() => hub.closeAll('shutdown'))
  let server: Server<unknown> | undefined
  const idleTimeouts: IdleTimeoutControl = { timeout: (request, seconds) => server?.timeout(request, seconds) }
  const app = buildApp({ logger, metrics, admission, lifecycle, events: { config, admission, broker, hub, publisherAuth, logger, metrics, idleTimeouts } })
  const proxy = { config, admission, logger, metrics, accessLog: new AccessLog(logger, metrics) }
  const handle = (request: Request, via: Server<unknown> | undefined = server) => {
    const admitted = admission.admit(request, via ?? null)
    if (admitted instanceof Response) return admitted
    // The hot path skips Elysia's router and hooks, which cost about a sixth of a proxied request.
    if (isProxyUrl(request.url)) return proxyRequest(proxy, request, idleTimeouts, admitted)
    return answerWithApp(request, admitted)
  }
  const answerWithApp = async (request: Request, context: GatewayContext) => {
    admission.remember(request, context)
    const response = await app.fetch(request)
    const service = pathOf(request.url).startsWith(EVENTS_PREFIX) ? 'events' : 'gateway'
    metrics.observe(service, request.method, response.status, (performance.now() - context.startedAt) / 1000)
    // Once answered, the context can go, even while an event stream keeps the request alive for hours.
    admission.forget(request)
    return response
  }
  return {
    handle,
    app,
    admission,
    hub,
    broker,
    lifecycle,
    metrics,
    listen(port = config.port) {
      server = Bun.serve({
        port,
        hostname: config.host,
        idleTimeout: CLIENT_IDLE_TIMEOUT_SECONDS,
        // Bodies are bounded by MAX_BODY_BYTES in the proxy, with a JSON 413; Bun's own limit would answer first and bare.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        fetch: handle,
      })
      return server
    },
    async shutdown(drainMs) {
      admission.close()
      const drained = server === undefined ? true : await lifecycle.shutdown(server, drainMs)
      hub.stop()
      broker.close()
      return drained
    },
  }
}

interface AppDependencies {
  logger: Logger
  metrics: Metrics
  admission: Admission
  lifecycle: Lifecycle
  events: EventsDependencies
}

/** The Elysia app: every route but the proxy, on requests that admission has already seen. */
function buildApp({ logger, metrics, admission, lifecycle, events }: AppDependencies) {
  const failed = (request: Request, error: GatewayError) => admission.refuse(request, admission.contextOf(request), error)
  // standardHostname: false — Elysia otherwise looks for the path after character 11 of the URL and
  // mis-routes requests whose Host is shorter than four characters (`Host: gw`).
  return (
    new Elysia({ handler: { standardHostname: false } })
      // Registered before the routes: Elysia applies a hook only to routes added after it.
      .onError({ as: 'global' }, ({ request, code, error }) => {
        if (error instanceof GatewayError) return failed(request, error)
        if (code === 'NOT_FOUND') return failed(request, new GatewayError('not_found', `no route for ${request.method} ${new URL(request.url).pathname}`))
        if (code === 'PARSE' || code === 'VALIDATION') return failed(request, new GatewayError('bad_request', String((error as Error).message)))
        logger.error({ err: error, request_id: admission.contextOf(request).requestId }, 'Unhandled error')
        return failed(request, new GatewayError('service_unavailable', 'the gateway failed to handle this request'))
      })
      .use(opsRoutes({ version: VERSION, admission, lifecycle, metrics }))
      .use(eventsRoutes(events))
  )
}
