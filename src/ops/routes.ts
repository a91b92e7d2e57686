/** The handlers of `GET /health`, `/ready` and `/metrics` (README, "Routes"). */
import { GatewayError } from '../http/errors'
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

/** Probes and scrapers must never read a cached answer. */
const NO_STORE = { 'cache-control': 'no-store' }

const json = (body: object) => new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json', ...NO_STORE } })

/** The handlers of the ops routes, by route name (`request/route-table.ts`). */
export function opsHandlers({ version, lifecycle, exposition, redis, workerId }: OpsDependencies) {
  const startedAt = Date.now()
  return {
    health: () =>
      json({
        status: 'ok',
        service: 'api-gateway',
        version,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        ...(redis === null ? {} : { redis: redis() ? 'up' : 'down' }),
        ...(workerId === null ? {} : { worker: workerId }),
      }),
    ready: () => {
      // A load balancer stops sending here once it reads the 503; the error funnel gives it the usual JSON.
      if (!lifecycle.ready) throw new GatewayError('service_unavailable', 'the gateway is shutting down', NO_STORE)
      return json({ status: 'ready' })
    },
    metrics: () => exposition(),
  }
}
