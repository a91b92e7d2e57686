/**
 * The request and response headers that belong to the gateway (README, "Policies", headers):
 * what it sets itself (forwarding, request id, identity, tracing, rate limits, CORS), what
 * describes the message rather than its content (`Host`, `Content-Length`) and the hop-by-hop
 * headers (RFC 9110 §7.6.1). A policy file's header rules may not name them.
 */
import { HOP_BY_HOP } from './hop-by-hop'

const OWNED: ReadonlySet<string> = new Set([
  'x-real-ip',
  'x-request-id',
  'x-auth-subject',
  'traceparent',
  'tracestate',
  'retry-after',
  'host',
  'content-length',
  ...HOP_BY_HOP,
])
const OWNED_PREFIXES = ['x-forwarded-', 'ratelimit-', 'access-control-']

/**
 * @example isGatewayOwnedHeader('X-Forwarded-For') // true
 * @example isGatewayOwnedHeader('X-Api-Version') // false
 */
export function isGatewayOwnedHeader(name: string): boolean {
  // CGI-style backends read `_` as `-` (README, "Headers a backend can trust").
  const spelled = name.toLowerCase().replaceAll('_', '-')
  return OWNED.has(spelled) || OWNED_PREFIXES.some((prefix) => spelled.startsWith(prefix))
}
