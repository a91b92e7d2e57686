/** `GET /health`, `/ready` and `/metrics` (SPEC §3). */
import { Elysia } from 'elysia'
import type { Admission } from '../http/admission'
import type { Lifecycle } from './lifecycle'
import type { Metrics } from './metrics'

export interface OpsDependencies {
  version: string
  admission: Admission
  lifecycle: Lifecycle
  metrics: Metrics
}

export function opsRoutes({ version, admission, lifecycle, metrics }: OpsDependencies) {
  const json = (request: Request, status: number, body: object) => {
    const headers = admission.decorate(request, new Headers({ 'content-type': 'application/json', 'cache-control': 'no-store' }))
    return new Response(JSON.stringify(body), { status, headers })
  }
  const startedAt = Date.now()
  return new Elysia({ name: 'ops' })
    .get('/health', ({ request }) =>
      json(request, 200, { status: 'ok', service: 'api-gateway', version, uptime_seconds: Math.floor((Date.now() - startedAt) / 1000) }),
    )
    .get('/ready', ({ request }) =>
      lifecycle.ready
        ? json(request, 200, { status: 'ready' })
        : json(request, 503, {
            status: 'shutting_down',
            error: 'service_unavailable',
            message: 'the gateway is shutting down',
            request_id: admission.contextOf(request).requestId,
          }),
    )
    .get('/metrics', async ({ request }) => {
      const exposition = await metrics.exposition()
      admission.decorate(request, exposition.headers)
      return exposition
    })
}
