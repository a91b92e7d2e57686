/**
 * Composition of the gateway: admission first, then the ops, events and proxy routes, and one
 * place that maps errors to SPEC §2 JSON. Nothing else lives here.
 */
import { Elysia } from 'elysia'
import type { Server } from 'bun'
import type { Config } from './config'
import { Admission } from './http/admission'
import { GatewayError, errorResponse } from './http/errors'
import type { Logger } from './log'
import { Lifecycle } from './ops/lifecycle'
import { Metrics } from './ops/metrics'
import { opsRoutes } from './ops/plugin'
import { proxyRoutes } from './proxy/plugin'
import { VERSION } from './version'

export interface GatewayOptions {
  config: Config
  logger: Logger
}

export interface Gateway {
  app: ReturnType<typeof buildApp>
  admission: Admission
  lifecycle: Lifecycle
  metrics: Metrics
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
  const admission = new Admission(config, metrics)
  const lifecycle = new Lifecycle()
  const app = buildApp({ config, logger, metrics, admission, lifecycle })
  let server: Server<unknown> | undefined
  return {
    app,
    admission,
    lifecycle,
    metrics,
    listen(port = config.port) {
      app.listen({
        port,
        hostname: config.host,
        // Bodies are bounded by MAX_BODY_BYTES in the proxy, with a JSON 413; Bun's own limit would answer first and bare.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      })
      server = app.server as Server<unknown>
      return server
    },
    async shutdown(drainMs) {
      admission.close()
      if (server === undefined) return true
      return lifecycle.shutdown(server, drainMs)
    },
  }
}

interface AppDependencies {
  config: Config
  logger: Logger
  metrics: Metrics
  admission: Admission
  lifecycle: Lifecycle
}

function buildApp({ config, logger, metrics, admission, lifecycle }: AppDependencies) {
  const failed = (request: Request, error: GatewayError) => {
    const answer = errorResponse(error.code, error.message, admission.contextOf(request).requestId, error.headers)
    admission.decorate(request, answer.headers)
    metrics.observe('gateway', request.method, error.status, (performance.now() - admission.contextOf(request).startedAt) / 1000)
    return answer
  }
  // standardHostname: false — Elysia otherwise looks for the path after character 11 of the URL and
  // mis-routes requests whose Host is shorter than four characters (`Host: gw`).
  return new Elysia({ handler: { standardHostname: false } })
    .onRequest(({ request, server }) => admission.admit(request, server))
    .use(opsRoutes({ version: VERSION, admission, lifecycle, metrics }))
    .use(proxyRoutes({ config, admission, logger, metrics }))
    .onError({ as: 'global' }, ({ request, code, error }) => {
      if (error instanceof GatewayError) return failed(request, error)
      if (code === 'NOT_FOUND') return failed(request, new GatewayError('not_found', `no route for ${request.method} ${new URL(request.url).pathname}`))
      if (code === 'PARSE' || code === 'VALIDATION') return failed(request, new GatewayError('bad_request', String((error as Error).message)))
      logger.error({ err: error, request_id: admission.contextOf(request).requestId }, 'Unhandled error')
      return failed(request, new GatewayError('service_unavailable', 'the gateway failed to handle this request'))
    })
}
