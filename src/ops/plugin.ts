/** `GET /health`, `/ready` and `/metrics` (README, "Routes"). */
import { Elysia } from 'elysia'
import { requestContext } from '../pipeline/elysia-context'
import { OPS_PATHS } from '../pipeline/routes'
import type { Lifecycle } from './lifecycle'
export interface OpsDependencies {
  version: string
  lifecycle: Lifecycle
  /** The `/metrics` answer: this process's figures, or every worker's. */
  exposition: () => Promise<Response>
  /** Cluster mode: whether Redis is reachable now (shown by `/health`, never a reason to fail it). Null: no cluster. */
  redis: (() => boolean) | null
  /** Which worker answers (shown by `/health`); null for a single process. */
  workerId: number | null
}

export function opsRoutes({ version, lifecycle, exposition, redis, workerId }: OpsDependencies) {
  const json = (status: number, body: object) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } })
  const startedAt = Date.now()
  return new Elysia({ name: 'ops' })
    .use(requestContext)
    .get(OPS_PATHS.health, () =>
      json(200, {
        status: 'ok',
        service: 'api-gateway',
        version,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        ...(redis === null ? {} : { redis: redis() ? 'up' : 'down' }),
        ...(workerId === null ? {} : { worker: workerId }),
      }),
    )
    .get(OPS_PATHS.ready, ({ ctx }) =>
      lifecycle.ready
        ? json(200, { status: 'ready' })
        : json(503, { status: 'shutting_down', error: 'service_unavailable', message: 'the gateway is shutting down', request_id: ctx.requestId }),
    )
    .get(OPS_PATHS.metrics, () => exposition())
}
