/**
 * The gateway's one router (README, "Routes"): every request is classified once, here, into a
 * `Route` that says who answers it and which steps apply to it (rate limit, how it is
 * admitted, client binding). Nothing else decides where a request goes: the pipeline runs the
 * steps the route names and hands the request to the route's handler.
 */
import { RESERVED_SERVICE_NAMES } from '../config/settings'
import type { RequestContext } from './context'

/** The gateway's own handlers, by the name of their route. */
export type OwnRouteName = 'health' | 'ready' | 'metrics' | 'console' | 'subscribe' | 'publish' | 'broadcast' | 'answer' | 'questions' | 'cancel'

export interface Route {
  /** Who answers: one of the gateway's own handlers, the proxy, or nobody (404). */
  readonly name: OwnRouteName | 'proxy' | 'not_found'
  /** Logs and metrics: `ops` and `not_found` count as the gateway's, `events` as `events`. */
  readonly kind: 'ops' | 'events' | 'proxy' | 'not_found'
  /** The methods this route answers; null: every method (the proxy checks its own). */
  readonly methods: ReadonlySet<string> | null
  /** `Allow` of a 405: every method the path answers, this route's and its siblings'. */
  readonly allow: string
  /** Whether the client IP's bucket is charged (publishers presenting `PUBLISH_TOKEN` never are). */
  readonly rateLimited: boolean
  /** `none`: no credentials at all; `publisher`: `PUBLISH_TOKEN` or loopback; `token`: a person's token, per policy. */
  readonly admission: 'none' | 'publisher' | 'token'
  /** The token must be for the path's `:client_id` (README, "Authentication"). */
  readonly bindsClient: boolean
}

const methods = (...names: string[]): ReadonlySet<string> => new Set(names)

const OPS = (name: 'health' | 'ready' | 'metrics'): Route => ({
  name,
  kind: 'ops',
  methods: methods('GET', 'HEAD'),
  allow: 'GET, HEAD',
  rateLimited: false,
  admission: 'none',
  bindsClient: false,
})

/** `/api/v1/events/<client_id>`: a person's stream, or a backend publishing to it. */
const CLIENT_PATH_ALLOW = 'GET, HEAD, POST'

export const ROUTES = {
  health: OPS('health'),
  ready: OPS('ready'),
  metrics: OPS('metrics'),
  // `api-gateway demo` only: its console page at `/` (`classify` never names it; identify does, in demo mode).
  console: { name: 'console', kind: 'ops', methods: methods('GET', 'HEAD'), allow: 'GET, HEAD', rateLimited: true, admission: 'none', bindsClient: false },
  subscribe: { name: 'subscribe', kind: 'events', methods: methods('GET', 'HEAD'), allow: CLIENT_PATH_ALLOW, rateLimited: true, admission: 'token', bindsClient: true },
  publish: { name: 'publish', kind: 'events', methods: methods('POST'), allow: CLIENT_PATH_ALLOW, rateLimited: true, admission: 'publisher', bindsClient: false },
  broadcast: { name: 'broadcast', kind: 'events', methods: methods('POST'), allow: 'POST', rateLimited: true, admission: 'publisher', bindsClient: false },
  answer: { name: 'answer', kind: 'events', methods: methods('POST'), allow: 'POST', rateLimited: true, admission: 'token', bindsClient: true },
  // A person's pending questions, bound to them like their stream.
  questions: { name: 'questions', kind: 'events', methods: methods('GET', 'HEAD'), allow: 'GET, HEAD', rateLimited: true, admission: 'token', bindsClient: true },
  // Withdrawing a question is the publisher's: never a person's token, and never limited.
  cancel: { name: 'cancel', kind: 'events', methods: methods('DELETE'), allow: 'DELETE', rateLimited: false, admission: 'publisher', bindsClient: false },
  proxy: { name: 'proxy', kind: 'proxy', methods: null, allow: '', rateLimited: true, admission: 'token', bindsClient: false },
  // Unknown paths are limited and, with authentication on, need a token: nothing is learnt without one.
  notFound: { name: 'not_found', kind: 'not_found', methods: null, allow: '', rateLimited: true, admission: 'token', bindsClient: false },
} as const satisfies Record<string, Route>

const OPS_PATHS: ReadonlyMap<string, Route> = new Map([
  ['/health', ROUTES.health],
  ['/ready', ROUTES.ready],
  ['/metrics', ROUTES.metrics],
])

/** `/api/v1/<service>/...` is proxied, except for the gateway's own `events`. */
export const API_PREFIX = '/api/v1/'
const ANSWER_SUFFIX = '/response'
const QUESTIONS_SEGMENT = '/questions'

/**
 * Sets `ctx.route`, and where the path's parameter is: the service segment and the rest of
 * the path of a proxied request, the `:client_id` of an event route. Reads the path as
 * received, decoding nothing.
 * @example classify(ctx) // GET /api/v1/runner/jobs?x=1: route proxy, serviceName 'runner', rest '/jobs'
 */
export function classify(ctx: RequestContext): void {
  const { url, pathStart, pathEnd } = ctx
  if (!url.startsWith(API_PREFIX, pathStart)) {
    ctx.route = OPS_PATHS.get(ctx.path) ?? ROUTES.notFound
    return
  }
  const nameStart = pathStart + API_PREFIX.length
  let nameEnd = url.indexOf('/', nameStart)
  if (nameEnd === -1 || nameEnd > pathEnd) nameEnd = pathEnd
  if (nameEnd === nameStart) {
    ctx.route = ROUTES.notFound
    return
  }
  const name = url.slice(nameStart, nameEnd)
  if (RESERVED_SERVICE_NAMES.has(name)) {
    classifyEvents(ctx, nameEnd)
    return
  }
  ctx.route = ROUTES.proxy
  ctx.serviceName = name
  ctx.restStart = nameEnd
}

/**
 * `/api/v1/events`, `/api/v1/events/<client_id>`, `…/<client_id>/response`,
 * `…/<client_id>/questions` and `…/<client_id>/questions/<question_id>`.
 */
function classifyEvents(ctx: RequestContext, eventsEnd: number): void {
  const { url, pathEnd, method } = ctx
  if (eventsEnd === pathEnd) {
    ctx.route = ROUTES.broadcast
    return
  }
  const idStart = eventsEnd + 1
  let idEnd = url.indexOf('/', idStart)
  if (idEnd === -1 || idEnd > pathEnd) idEnd = pathEnd
  ctx.paramStart = idStart
  ctx.paramEnd = idEnd
  if (idEnd === idStart) ctx.route = ROUTES.notFound
  else if (idEnd === pathEnd) ctx.route = method === 'POST' ? ROUTES.publish : ROUTES.subscribe
  else if (url.slice(idEnd, pathEnd) === ANSWER_SUFFIX) ctx.route = ROUTES.answer
  else if (url.startsWith(QUESTIONS_SEGMENT, idEnd)) classifyQuestions(ctx, idEnd + QUESTIONS_SEGMENT.length)
  else ctx.route = ROUTES.notFound
}

/** After `…/<client_id>/questions`: the list, or one question (`questionStart`, `questionEnd`). */
function classifyQuestions(ctx: RequestContext, segmentEnd: number): void {
  const { url, pathEnd } = ctx
  if (segmentEnd === pathEnd) {
    ctx.route = ROUTES.questions
    return
  }
  const questionStart = segmentEnd + 1
  const slash = url.indexOf('/', questionStart)
  if (url[segmentEnd] !== '/' || questionStart === pathEnd || (slash !== -1 && slash < pathEnd)) {
    ctx.route = ROUTES.notFound
    return
  }
  ctx.questionStart = questionStart
  ctx.questionEnd = pathEnd
  ctx.route = ROUTES.cancel
}
