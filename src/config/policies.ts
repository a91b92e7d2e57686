/**
 * The policies the gateway applies per service and per route (README, "Policies"): one
 * immutable `PolicySet`, made from the environment alone or from it and a policy file, and
 * swapped whole on reload. Every value here is already resolved: a route's policy holds what
 * its route, its service or the environment said, in that order of precedence.
 */
import type { HeaderRules } from '../http/header-rules'
import type { Config, InstanceTarget, ServiceTarget } from './settings'

export type AuthMode = 'required' | 'optional' | 'off'

/** The methods the proxy forwards, and so the ones a route may allow (README, "Reverse proxy"). */
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

/** A token bucket and who it is kept for. */
export interface RateLimitPolicy {
  /**
   * The level that set it, which names its buckets: `global` (the environment's),
   * `service:<name>` or `route:<name>:<path>`. Two policies of one id share their buckets.
   */
  bucket: string
  perMinute: number
  burst: number
  /** `ip`: the client IP, before authentication; `subject`: the token's `sub`, after it. */
  key: 'ip' | 'subject'
}

export type { HeaderRules }

/** One claim a token must hold: any of `values` (README, "Policies", `require`). */
export interface ClaimRequirement {
  claim: string
  values: readonly (string | number | boolean)[]
}

/** What applies to a request, resolved once per route (or per service where no route matches). */
export interface RoutePolicy {
  /** For logs and `--check`: `service:billing`, `route:billing:/admin`. */
  id: string
  timeoutMs: number
  retries: number
  maxBodyBytes: number
  auth: AuthMode
  /** Every one must hold (empty: none). */
  require: readonly ClaimRequirement[]
  /** null: not limited. */
  rateLimit: RateLimitPolicy | null
  requestHeaders: HeaderRules | null
  responseHeaders: HeaderRules | null
  /** The methods allowed; null: every method the proxy forwards. */
  methods: ReadonlySet<string> | null
}

/** A route of a service: a path prefix matched by whole segments (README, "Policies"). */
export interface RouteEntry {
  /** As written in the file: `/admin`. */
  path: string
  /** Its segments as matched: unreserved characters decoded, folded when the service is case-insensitive. */
  segments: readonly string[]
  policy: RoutePolicy
}

/** Passive health of a service's instances (README, "Instances"). */
export interface CircuitPolicy {
  failures: number
  cooldownMs: number
  statuses: ReadonlySet<number>
}

export interface ServicePolicy {
  name: string
  /** The URL setting as configured, for logs: `http://a:8080,http://b:8080`. */
  url: string
  instances: readonly InstanceTarget[]
  circuit: CircuitPolicy
  caseSensitive: boolean
  /** Longest path first: the first that matches wins. */
  routes: readonly RouteEntry[]
  /** What a path matching no route gets. */
  policy: RoutePolicy
}

export interface PolicySet {
  services: ReadonlyMap<string, ServicePolicy>
  /** The environment's own policy: the gateway's routes and requests to no service. */
  global: RoutePolicy
}

/** `RATE_LIMIT` and `RATE_LIMIT_BURST` as a policy; null when `RATE_LIMIT=0`. */
export function globalRateLimit(config: Pick<Config, 'rateLimit' | 'rateLimitBurst'>): RateLimitPolicy | null {
  return config.rateLimit === 0 ? null : { bucket: 'global', perMinute: config.rateLimit, burst: config.rateLimitBurst, key: 'ip' }
}

/** The environment's policy: what applies everywhere a file says nothing. */
export function environmentPolicy(config: Config): RoutePolicy {
  return {
    id: 'environment',
    timeoutMs: config.upstreamTimeoutMs,
    retries: config.upstreamRetries,
    maxBodyBytes: config.maxBodyBytes,
    auth: config.auth === null ? 'off' : 'required',
    require: [],
    rateLimit: globalRateLimit(config),
    requestHeaders: null,
    responseHeaders: null,
    methods: null,
  }
}

/** The environment's circuit settings. */
export function environmentCircuit(config: Config): CircuitPolicy {
  return { failures: config.circuitFailures, cooldownMs: config.circuitCooldownMs, statuses: config.circuitStatuses }
}

/**
 * The policy set of the environment alone: every service with the global settings, no routes.
 * @example policiesOfEnvironment(loadConfig(process.env)).services.get('runner')?.policy.timeoutMs // 30000
 */
export function policiesOfEnvironment(config: Config): PolicySet {
  const global = environmentPolicy(config)
  const circuit = environmentCircuit(config)
  const services = new Map<string, ServicePolicy>()
  for (const [name, target] of config.services) services.set(name, servicePolicyOf(target, global, circuit))
  return { services, global }
}

function servicePolicyOf(target: ServiceTarget, policy: RoutePolicy, circuit: CircuitPolicy): ServicePolicy {
  return { name: target.name, url: target.url, instances: target.instances, circuit, caseSensitive: true, routes: [], policy: { ...policy, id: `service:${target.name}` } }
}

/**
 * One service's policies as `--check` prints them, and as the reload log compares them.
 * @example describeService(set.services.get('billing')!) // { url, circuit, policy: {...}, routes: [...] }
 */
export function describeService(service: ServicePolicy): Record<string, unknown> {
  return {
    url: service.url,
    circuit: { failures: service.circuit.failures, cooldown_ms: service.circuit.cooldownMs, statuses: [...service.circuit.statuses] },
    case_sensitive: service.caseSensitive,
    ...describePolicy(service.policy),
    routes: service.routes.map((route) => ({ path: route.path, ...describePolicy(route.policy) })),
  }
}

function describePolicy(policy: RoutePolicy): Record<string, unknown> {
  return {
    timeout_ms: policy.timeoutMs,
    retries: policy.retries,
    max_body_bytes: policy.maxBodyBytes,
    auth: policy.auth,
    ...(policy.require.length === 0 ? {} : { require: Object.fromEntries(policy.require.map((r) => [r.claim, r.values.length === 1 ? r.values[0] : r.values])) }),
    rate_limit: policy.rateLimit === null ? 'off' : { rate: policy.rateLimit.perMinute, burst: policy.rateLimit.burst, key: policy.rateLimit.key, buckets: policy.rateLimit.bucket },
    ...(policy.methods === null ? {} : { methods: [...policy.methods] }),
    ...(policy.requestHeaders === null ? {} : { request_headers: describeHeaders(policy.requestHeaders) }),
    ...(policy.responseHeaders === null ? {} : { response_headers: describeHeaders(policy.responseHeaders) }),
  }
}

function describeHeaders(rules: HeaderRules): Record<string, unknown> {
  return { set: Object.fromEntries(rules.set), remove: rules.remove }
}

/** What a reload changed, by service name (README, "Policies", reload). */
export interface PolicyChanges {
  added: string[]
  removed: string[]
  /** Changed in any way: URL, circuit, routes or policies. */
  changed: string[]
}

/**
 * @example changesBetween(before, after) // { added: ['billing'], removed: [], changed: ['runner'] }
 */
export function changesBetween(before: PolicySet, after: PolicySet): PolicyChanges {
  const changes: PolicyChanges = { added: [], removed: [], changed: [] }
  for (const name of after.services.keys()) if (!before.services.has(name)) changes.added.push(name)
  for (const [name, service] of before.services) {
    const now = after.services.get(name)
    if (now === undefined) changes.removed.push(name)
    else if (JSON.stringify(describeService(service)) !== JSON.stringify(describeService(now))) changes.changed.push(name)
  }
  return changes
}
