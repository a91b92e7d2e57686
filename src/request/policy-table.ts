/**
 * The policies as requests use them (README, "Policies"): per service its upstream and routes,
 * per route its resolved policy and the limiter of its buckets. One `PolicyTable` is current
 * at a time; a reload makes a new one and swaps it whole, and a request keeps the table it
 * started with until it ends.
 */
import type { PolicySet, RateLimitPolicy, RoutePolicy, ServicePolicy } from '../config/policies'
import { pathSegments, underRoute } from '../config/route-paths'
import type { RateLimiter } from '../ratelimit/token-bucket'
import type { Upstream } from '../upstream/upstream'
import { type AnswerPaths, answerPathsOf } from './answer-paths'
import type { RequestContext } from './context'

/** A policy as the steps apply it: what it says, and the buckets of its rate limit. */
export interface ActivePolicy {
  readonly policy: RoutePolicy
  /** The buckets of `policy.rateLimit`; null when the policy is not limited. */
  readonly limiter: RateLimiter | null
}

export interface ServiceTable {
  readonly name: string
  readonly upstream: Upstream
  readonly caseSensitive: boolean
  /** Longest path first. */
  readonly routes: readonly { readonly segments: readonly string[]; readonly active: ActivePolicy }[]
  /** A path matching no route. */
  readonly base: ActivePolicy
  /** The answer paths of `hitl` that a request to this service could reach: refused (README, "Answer"). */
  readonly answerPaths: readonly AnswerPaths[]
}

export interface PolicyTable {
  readonly policies: PolicySet
  readonly services: ReadonlyMap<string, ServiceTable>
  /** The environment's policy: the gateway's own routes, and requests to no service. */
  readonly global: ActivePolicy
}

/** What a table is built from: the runtime objects that outlive one table (instances, buckets). */
export interface PolicyRuntime {
  /** The upstream of a service: its instances kept across tables, so health and in-flight counts survive a reload. */
  upstreamFor(service: ServicePolicy): Upstream
  /** The limiter of a rate limit's buckets, kept across tables by its bucket id. */
  limiterFor(limit: RateLimitPolicy | null): RateLimiter | null
  /** `HITL_RESPONSE_PATH`: only the gateway sends there. */
  hitlResponsePath: string
}

/**
 * @example const table = buildPolicyTable(loadPolicies(config, path).policies, runtime)
 */
export function buildPolicyTable(policies: PolicySet, runtime: PolicyRuntime): PolicyTable {
  const activate = (policy: RoutePolicy): ActivePolicy => ({ policy, limiter: runtime.limiterFor(policy.rateLimit) })
  const services = new Map<string, ServiceTable>()
  for (const [name, service] of policies.services) {
    services.set(name, {
      name,
      upstream: runtime.upstreamFor(service),
      caseSensitive: service.caseSensitive,
      routes: service.routes.map((route) => ({ segments: route.segments, active: activate(route.policy) })),
      base: activate(service.policy),
      answerPaths: answerPathsOf(service, policies.services.get('hitl'), runtime.hitlResponsePath),
    })
  }
  return { policies, services, global: activate(policies.global) }
}

/**
 * Sets `ctx.active` (and, for a proxied request, `ctx.upstream`): the policy of the route the
 * path falls under, of its service where it falls under none, the environment's for the
 * gateway's own routes and unknown services. On a service with routes an ambiguous path gets
 * its service's policy and `ctx.ambiguousPath`: the route step refuses it.
 */
export function resolvePolicy(ctx: RequestContext, table: PolicyTable): void {
  ctx.table = table
  if (ctx.route.kind !== 'proxy') {
    ctx.active = table.global
    return
  }
  const service = table.services.get(ctx.serviceName)
  if (service === undefined) {
    ctx.active = table.global
    return
  }
  ctx.upstream = service.upstream
  ctx.active = service.base
  if (service.routes.length === 0) return
  const segments = pathSegments(ctx.url.slice(ctx.restStart, ctx.pathEnd), service.caseSensitive)
  if (segments === null) {
    ctx.ambiguousPath = true
    return
  }
  for (const route of service.routes) {
    if (underRoute(segments, route.segments)) {
      ctx.active = route.active
      return
    }
  }
}
