/**
 * The gateway's URL layout, in one place (README, "Routes"). Every request is classified once,
 * here, by the identify step; the classification travels on its `RequestContext`, and the
 * Elysia routes are registered from the patterns below.
 */
import { RESERVED_SERVICE_NAMES } from '../config'
import type { RequestContext } from './context'

/** Who answers a request. */
export type RouteKind = 'ops' | 'events' | 'proxy' | 'not_found'

/** Health, readiness and metrics: never rate limited, never authenticated. */
export const OPS_PATHS = { health: '/health', ready: '/ready', metrics: '/metrics' } as const
const OPS_PATH_SET: ReadonlySet<string> = new Set(Object.values(OPS_PATHS))

/** `/api/v1/<service>/...` is proxied, except for the gateway's own `events`. */
export const API_PREFIX = '/api/v1/'
export const EVENTS_PATH = '/api/v1/events'

/** The event routes, as Elysia patterns. */
export const EVENTS_ROUTES = {
  subscribe: `${EVENTS_PATH}/:client_id`,
  publish: `${EVENTS_PATH}/:client_id`,
  broadcast: EVENTS_PATH,
  answer: `${EVENTS_PATH}/:client_id/response`,
} as const

/**
 * Sets `kind` (and, for the proxy, `serviceName` and `restStart`; for publishing, `isPublish`)
 * from the path alone, without decoding it.
 * @example classify(ctx) // for GET /api/v1/runner/jobs?x=1: kind 'proxy', serviceName 'runner', rest '/jobs'
 */
export function classify(ctx: RequestContext): void {
  const { url, pathStart, pathEnd } = ctx
  if (!url.startsWith(API_PREFIX, pathStart)) {
    ctx.kind = OPS_PATH_SET.has(ctx.path) ? 'ops' : 'not_found'
    return
  }
  const nameStart = pathStart + API_PREFIX.length
  let nameEnd = url.indexOf('/', nameStart)
  if (nameEnd === -1 || nameEnd > pathEnd) nameEnd = pathEnd
  if (nameEnd === nameStart) {
    ctx.kind = 'not_found'
    return
  }
  const name = url.slice(nameStart, nameEnd)
  if (RESERVED_SERVICE_NAMES.has(name)) {
    ctx.kind = 'events'
    // POST /api/v1/events (broadcast) or POST /api/v1/events/<client_id> (publish).
    ctx.isPublish = ctx.method === 'POST' && (nameEnd === pathEnd || url.indexOf('/', nameEnd + 1) === -1 || url.indexOf('/', nameEnd + 1) >= pathEnd)
    return
  }
  ctx.kind = 'proxy'
  ctx.serviceName = name
  ctx.restStart = nameEnd
}
