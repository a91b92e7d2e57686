/**
 * The policy file (`GATEWAY_CONFIG`, README "Policies"): YAML (so JSON too) read with Bun's own
 * parser, checked against one TypeBox schema, then resolved against the environment into a
 * `PolicySet`. Every error names the file, the key's path (`services.billing.routes[0].methods`)
 * and what is allowed; an unknown key names the closest known one.
 */
import { readFileSync } from 'node:fs'
import { type TSchema, Type } from '@sinclair/typebox'
import { Value, type ValueError } from '@sinclair/typebox/value'
import { isGatewayOwnedHeader } from '../http/owned-headers'
import {
  type AuthMode,
  type CircuitPolicy,
  type ClaimRequirement,
  type HeaderRules,
  type PolicySet,
  ROUTE_METHODS,
  type RateLimitPolicy,
  type RouteEntry,
  type RoutePolicy,
  type ServicePolicy,
  environmentCircuit,
  environmentPolicy,
  policiesOfEnvironment,
} from './policies'
import { routeSegments } from './route-paths'
import { type Config, ConfigError, INSTANCE_URL_RULE, RESERVED_SERVICE_NAMES, type ServiceTarget, instanceTargets } from './settings'

/** Schemas carry `allowed`: the words an error uses for what the key takes. */
const allowed = (text: string) => ({ allowed: text })

const SERVICE_NAME = '^[a-z0-9_-]{1,64}$'
const Method = Type.Union(
  ROUTE_METHODS.map((method) => Type.Literal(method)),
  allowed(`one of ${ROUTE_METHODS.join(', ')}`),
)
const ClaimValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()], allowed('a string, a number or true/false'))
const Require = Type.Record(Type.String({ minLength: 1 }), Type.Union([ClaimValue, Type.Array(ClaimValue, { minItems: 1 })], allowed('a claim value, or a list of them (any one will do)')), {
  ...allowed('a mapping of claim names to the value each must hold'),
})
const Headers = Type.Object(
  {
    set: Type.Optional(Type.Record(Type.String(), Type.String(allowed('a header value (a string)')), allowed('a mapping of header names to values'))),
    remove: Type.Optional(Type.Array(Type.String(), allowed('a list of header names'))),
  },
  { additionalProperties: false, ...allowed('a mapping with set and remove') },
)
const Off = [Type.Literal('off'), Type.Literal(false)]
const RateLimit = Type.Union(
  [
    ...Off,
    Type.Object(
      {
        rate: Type.Integer({ minimum: 1, ...allowed('requests per minute, an integer >= 1') }),
        burst: Type.Optional(Type.Integer({ minimum: 1, ...allowed('the bucket capacity, an integer >= 1') })),
        key: Type.Optional(Type.Union([Type.Literal('ip'), Type.Literal('subject')], allowed('ip or subject'))),
      },
      { additionalProperties: false },
    ),
  ],
  allowed('off, or a mapping with rate, burst and key'),
)
/** What a route and its service both take. */
const OVERRIDES = {
  timeout_ms: Type.Optional(Type.Integer({ minimum: 1, ...allowed('milliseconds, an integer >= 1') })),
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, ...allowed('an integer from 0 to 10') })),
  max_body_bytes: Type.Optional(Type.Integer({ minimum: 0, ...allowed('bytes, an integer >= 0') })),
  auth: Type.Optional(Type.Union([Type.Literal('required'), Type.Literal('optional'), ...Off], allowed('required, optional or off'))),
  rate_limit: Type.Optional(RateLimit),
  request_headers: Type.Optional(Headers),
  response_headers: Type.Optional(Headers),
}
const Route = Type.Object(
  {
    path: Type.String({ pattern: '^/', ...allowed('a path starting with /') }),
    methods: Type.Optional(Type.Array(Method, { minItems: 1, ...allowed(`a list of methods (${ROUTE_METHODS.join(', ')})`) })),
    require: Type.Optional(Require),
    ...OVERRIDES,
  },
  { additionalProperties: false },
)
const Service = Type.Object(
  {
    url: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], allowed(`${INSTANCE_URL_RULE}, or a list of them`))),
    circuit: Type.Optional(
      Type.Object(
        {
          failures: Type.Optional(Type.Integer({ minimum: 0, ...allowed('an integer >= 0 (0: never eject)') })),
          cooldown_ms: Type.Optional(Type.Integer({ minimum: 1, ...allowed('milliseconds, an integer >= 1') })),
          statuses: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599, ...allowed('an HTTP status from 100 to 599') }), allowed('a list of HTTP statuses'))),
        },
        { additionalProperties: false },
      ),
    ),
    case_sensitive: Type.Optional(Type.Boolean(allowed('true or false'))),
    routes: Type.Optional(Type.Array(Route, allowed('a list of routes'))),
    ...OVERRIDES,
  },
  { additionalProperties: false },
)
const PolicyDocument = Type.Object(
  {
    services: Type.Record(Type.String({ pattern: SERVICE_NAME }), Service, {
      additionalProperties: false,
      ...allowed('a mapping of service names (1-64 characters of [a-z0-9_-]) to their policies'),
    }),
  },
  { additionalProperties: false },
)

type Document = { services: Record<string, ServiceDocument> }
type Overrides = {
  timeout_ms?: number
  retries?: number
  max_body_bytes?: number
  auth?: 'required' | 'optional' | 'off' | false
  rate_limit?: 'off' | false | { rate: number; burst?: number; key?: 'ip' | 'subject' }
  request_headers?: { set?: Record<string, string>; remove?: string[] }
  response_headers?: { set?: Record<string, string>; remove?: string[] }
}
type RouteDocument = Overrides & { path: string; methods?: string[]; require?: Record<string, unknown> }
type ServiceDocument = Overrides & {
  url?: string | string[]
  circuit?: { failures?: number; cooldown_ms?: number; statuses?: number[] }
  case_sensitive?: boolean
  routes?: RouteDocument[]
}

/** What reading a policy file gives besides the set: what the caller logs, and the text workers are handed. */
export interface LoadedPolicies {
  policies: PolicySet
  /** Services the file names whose URL a `<NAME>_URL` variable replaced. */
  urlsFromEnvironment: string[]
  /** The file's text as validated; null without a file. */
  text: string | null
}

/**
 * The policies of `config`: of the environment alone, or with the policy file at `path` read now.
 * @example loadPolicies(config, '/etc/api-gateway/policies.yaml').policies.services.get('billing')
 * @throws ConfigError naming the file, the key's path and what is allowed.
 */
export function loadPolicies(config: Config, path: string | null): LoadedPolicies {
  if (path === null) return { policies: policiesOfEnvironment(config), urlsFromEnvironment: [], text: null }
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`${path}: cannot read the policy file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  return policiesOfText(config, path, text)
}

/**
 * The policies of a policy file's text (`file` names it in errors).
 * @throws ConfigError as `loadPolicies`.
 */
export function policiesOfText(config: Config, file: string, text: string): LoadedPolicies {
  let document: unknown
  try {
    document = Bun.YAML.parse(text)
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML (${(error as Error).message.replace(/^YAML Parse error: /, '')})`)
  }
  const error = mostTellingError([...Value.Errors(PolicyDocument, document)], document)
  if (error !== undefined) throw new ConfigError(`${file}: ${describeError(error, document)}`)
  return { ...resolve(config, file, document as Document), text }
}

/**
 * The error that says most: an unknown key before anything else (a typo is the likeliest
 * mistake, and it also explains a required key found missing), and inside a union the error of
 * the alternative whose kind the value has (`rate_limit: { rate: 0 }` is about `rate`).
 */
function mostTellingError(errors: ValueError[], document: unknown): ValueError | undefined {
  const first = errors.find((error) => error.message === 'Unexpected property') ?? errors[0]
  if (first === undefined || first.errors.length === 0 || first.value === null || typeof first.value !== 'object') return first
  for (const alternative of first.errors) {
    const inner = mostTellingError([...alternative], document)
    if (inner !== undefined && inner.path !== first.path) return inner
  }
  return first
}

/** `services.billing.routes[0].methods` for the JSON pointer `/services/billing/routes/0/methods` of `document`. */
function keyPath(pointer: string, document: unknown): string {
  let path = ''
  let at: unknown = document
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    path += Array.isArray(at) ? `[${key}]` : path === '' && /^[A-Za-z0-9_-]+$/.test(key) ? key : keySegment(key)
    at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined
  }
  return path === '' ? '(the document)' : path
}

/** One schema error as a person reads it: where, what is wrong, what is allowed. */
function describeError(error: ValueError, document: unknown): string {
  const where = keyPath(error.path, document)
  if (error.message === 'Unexpected property') {
    const slash = error.path.lastIndexOf('/')
    const parentPath = error.path.slice(0, slash)
    const key = error.path.slice(slash + 1)
    if (parentPath === '/services') return `${where}: not a valid service name; expected 1-64 characters of [a-z0-9_-]`
    const known = knownKeysAt(parentPath, document)
    return `${where}: unknown key${known.length === 0 ? '' : `; did you mean ${closest(key, known)}? (allowed: ${known.join(', ')})`}`
  }
  if (error.message === 'Expected required property') return `${where}: required`
  const expected = (error.schema as { allowed?: string }).allowed ?? plainExpectation(error.schema)
  return `${where}: ${JSON.stringify(error.value) ?? 'nothing'} is not allowed; expected ${expected}`
}

function plainExpectation(schema: TSchema): string {
  const type = (schema as { type?: string }).type
  if (type === 'object') return 'a mapping'
  if (type === 'array') return 'a list'
  if (type === 'string') return 'a string'
  if (type === 'integer') return 'an integer'
  return 'another value'
}

/** The keys the schema allows in the object at `pointer`. */
function knownKeysAt(pointer: string, document: unknown): string[] {
  const segments = pointer.split('/').slice(1)
  // services.<name> is a service; services.<name>.routes[i] a route; the circuit and header blocks their own.
  if (segments.length === 0) return Object.keys(PolicyDocument.properties)
  if (segments.length === 2) return Object.keys(Service.properties)
  const last = segments.at(-1)!
  if (segments.at(-2) === 'routes' && Array.isArray(valueAt(document, segments.slice(0, -1)))) return Object.keys(Route.properties)
  if (last === 'circuit') return ['failures', 'cooldown_ms', 'statuses']
  if (last === 'request_headers' || last === 'response_headers') return Object.keys(Headers.properties)
  if (last === 'rate_limit') return ['rate', 'burst', 'key']
  return []
}

function valueAt(document: unknown, segments: string[]): unknown {
  let at = document
  for (const key of segments) at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined
  return at
}

/** The known key nearest to `key` (Levenshtein distance). */
function closest(key: string, known: readonly string[]): string {
  let best = known[0]!
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const distance = levenshtein(key, candidate)
    if (distance < bestDistance) (best = candidate), (bestDistance = distance)
  }
  return best
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    previous = current
  }
  return previous[b.length]!
}

/** The document, known to fit the schema, resolved against the environment. */
function resolve(config: Config, file: string, document: Document): Omit<LoadedPolicies, 'text'> {
  const fail = (path: string, message: string) => new ConfigError(`${file}: ${path}: ${message}`)
  const global = environmentPolicy(config)
  const services = new Map(policiesOfEnvironment(config).services)
  const urlsFromEnvironment: string[] = []
  for (const [name, service] of Object.entries(document.services)) {
    const at = `services.${name}`
    if (RESERVED_SERVICE_NAMES.has(name)) throw fail(at, `the service name "${name}" is reserved by the gateway`)
    let target: ServiceTarget | undefined = config.services.get(name)
    if (service.url !== undefined) {
      // Checked even where the environment's URL wins: a file is valid or not whatever the environment says.
      const entries = (Array.isArray(service.url) ? service.url : service.url.split(',')).map((entry) => entry.trim())
      const instances = instanceTargets(entries)
      if (typeof instances === 'string') throw fail(`${at}.url`, `expected ${INSTANCE_URL_RULE}, or a list of them; ${instances}`)
      if (config.servicesFromEnvironment.has(name)) urlsFromEnvironment.push(name)
      else target = { name, url: entries.join(','), instances }
    }
    if (target === undefined) throw fail(`${at}.url`, `required: the service has no URL (set it here, or with ${name.toUpperCase()}_URL)`)
    services.set(name, resolveService(config, name, target, service, global, fail))
  }
  return { policies: { services, global }, urlsFromEnvironment }
}

type Fail = (path: string, message: string) => ConfigError

function resolveService(config: Config, name: string, target: ServiceTarget, service: ServiceDocument, global: RoutePolicy, fail: Fail): ServicePolicy {
  const at = `services.${name}`
  const base = resolveOverrides(config, `service:${name}`, at, service, global, fail)
  const circuit: CircuitPolicy = {
    failures: service.circuit?.failures ?? config.circuitFailures,
    cooldownMs: service.circuit?.cooldown_ms ?? config.circuitCooldownMs,
    statuses: service.circuit?.statuses === undefined ? environmentCircuit(config).statuses : new Set(service.circuit.statuses),
  }
  const caseSensitive = service.case_sensitive ?? true
  const routes: RouteEntry[] = []
  const seen = new Map<string, number>()
  service.routes?.forEach((route, i) => {
    const routeAt = `${at}.routes[${i}]`
    const segments = routeSegments(route.path, caseSensitive)
    if (typeof segments === 'string') throw fail(`${routeAt}.path`, segments)
    const spelled = segments.join('/')
    const earlier = seen.get(spelled)
    if (earlier !== undefined) throw fail(`${routeAt}.path`, `${JSON.stringify(route.path)} is the path of routes[${earlier}] too; each route needs its own path`)
    seen.set(spelled, i)
    // The buckets are named by the path as matched, so respelling it in the file keeps its tokens.
    const policy = resolveOverrides(config, `route:${name}:/${spelled}`, routeAt, route, base, fail)
    // HEAD is answered wherever GET is, as on the gateway's own routes (RFC 9110 §9.3.2).
    if (route.methods !== undefined) policy.methods = new Set(route.methods.includes('GET') ? [...route.methods, 'HEAD'] : route.methods)
    if (route.require !== undefined) {
      if (config.auth === null) throw fail(`${routeAt}.require`, 'needs authentication, which is not configured (AUTH_JWT_SECRET or AUTH_JWKS_URL)')
      if (policy.auth === 'off') throw fail(`${routeAt}.require`, 'cannot apply where auth is off')
      policy.require = Object.entries(route.require).map(([claim, value]) => ({ claim, values: (Array.isArray(value) ? value : [value]) as ClaimRequirement['values'] }))
    }
    routes.push({ path: route.path, segments, policy })
  })
  // Longest first: the first route that matches is the most specific.
  routes.sort((a, b) => b.segments.length - a.segments.length)
  return { name, url: target.url, instances: target.instances, circuit, caseSensitive, routes, policy: base }
}

/** A level's own settings over what it inherits (`parent`): route over service over environment. */
function resolveOverrides(config: Config, id: string, at: string, level: Overrides, parent: RoutePolicy, fail: Fail): RoutePolicy & { methods: ReadonlySet<string> | null; require: readonly ClaimRequirement[] } {
  return {
    id,
    timeoutMs: level.timeout_ms ?? parent.timeoutMs,
    retries: level.retries ?? parent.retries,
    maxBodyBytes: level.max_body_bytes ?? parent.maxBodyBytes,
    auth: level.auth === undefined ? parent.auth : resolveAuth(config, `${at}.auth`, level.auth, fail),
    require: [],
    rateLimit: level.rate_limit === undefined ? parent.rateLimit : resolveRateLimit(config, id, `${at}.rate_limit`, level.rate_limit, fail),
    requestHeaders: resolveHeaders(`${at}.request_headers`, level.request_headers, parent.requestHeaders, fail),
    responseHeaders: resolveHeaders(`${at}.response_headers`, level.response_headers, parent.responseHeaders, fail),
    methods: null,
  }
}

function resolveAuth(config: Config, at: string, auth: 'required' | 'optional' | 'off' | false, fail: Fail): AuthMode {
  if (auth === false || auth === 'off') return 'off'
  // Nothing fails open: a policy asking for tokens where none can be verified is refused.
  if (config.auth === null) throw fail(at, `${auth} needs authentication, which is not configured (AUTH_JWT_SECRET or AUTH_JWKS_URL)`)
  return auth
}

function resolveRateLimit(config: Config, id: string, at: string, limit: NonNullable<Overrides['rate_limit']>, fail: Fail): RateLimitPolicy | null {
  if (limit === 'off' || limit === false) return null
  // Without tokens there is no subject: such a limit would quietly be one per IP.
  if (limit.key === 'subject' && config.auth === null) throw fail(`${at}.key`, 'subject needs authentication, which is not configured (AUTH_JWT_SECRET or AUTH_JWKS_URL); use ip')
  return { bucket: id, perMinute: limit.rate, burst: limit.burst ?? limit.rate, key: limit.key ?? 'ip' }
}

/** RFC 9110 §5.6.2: a header name is a token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** RFC 9110 §5.5: visible characters, spaces and tabs; never CR, LF or NUL. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/**
 * A level's header rules over what it inherits: for each name it sets or removes, its word
 * beats the inherited one (a route may remove what its service sets, or set what its service
 * removes); other inherited rules stay.
 */
function resolveHeaders(at: string, rules: Overrides['request_headers'], inherited: HeaderRules | null, fail: Fail): HeaderRules | null {
  if (rules === undefined) return inherited
  const check = (name: string, where: string) => {
    if (!HEADER_NAME.test(name)) throw fail(where, `${JSON.stringify(name)} is not a header name (a token of letters, digits and !#$%&'*+-.^_\`|~)`)
    if (isGatewayOwnedHeader(name)) throw fail(where, `${name} is the gateway's own header (forwarding, request id, identity, tracing, rate-limit, CORS), Host, Content-Length or hop-by-hop: it cannot be set or removed`)
  }
  const set = new Map(inherited?.set ?? [])
  const remove = new Set(inherited?.remove ?? [])
  ;(rules.remove ?? []).forEach((name, i) => {
    check(name, `${at}.remove[${i}]`)
    set.delete(name.toLowerCase())
    remove.add(name.toLowerCase())
  })
  for (const [name, value] of Object.entries(rules.set ?? {})) {
    const where = `${at}.set${keySegment(name)}`
    check(name, where)
    if (!HEADER_VALUE.test(value)) throw fail(where, 'a header value cannot hold CR, LF or other control characters')
    set.set(name.toLowerCase(), value)
    remove.delete(name.toLowerCase())
  }
  return { set: [...set], remove: [...remove] }
}

/** `.name`, or `["odd name"]` for a key that is not a plain word (as `keyPath` writes them). */
function keySegment(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`
}
