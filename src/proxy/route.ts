/**
 * Phase 1 of the proxy: from the raw request URL to the backend URL, byte-exact (SPEC §4).
 * The path and query are sliced from the URL as received, never decoded and re-encoded. (Bun has
 * already resolved dot segments, `%2e%2e` included, against the whole gateway path, so a request
 * cannot climb out of a service's base path.)
 */
import type { ServiceTarget } from '../config'
import { GatewayError } from '../http/errors'

export const PROXY_PREFIX = '/api/v1/'

export interface ProxyRoute {
  service: ServiceTarget
  /** The full URL the request is forwarded to. */
  upstreamUrl: string
  /** The path on the backend, without the query (what the log line shows). */
  upstreamPath: string
}

/** A `%` not followed by two hex digits (RFC 3986 §2.1). */
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/

/**
 * @example resolveRoute('http://gw/api/v1/x/a?q=%41', services) // → http://h:9000/base/a?q=%41
 * @throws GatewayError `bad_request` for malformed percent-encoding, `unknown_service` for an unregistered name.
 */
export function resolveRoute(requestUrl: string, services: ReadonlyMap<string, ServiceTarget>): ProxyRoute {
  const pathAndQuery = requestUrl.slice(requestUrl.indexOf('/', requestUrl.indexOf('//') + 2))
  if (MALFORMED_PERCENT.test(pathAndQuery)) {
    throw new GatewayError('bad_request', 'malformed percent-encoding in the request target')
  }
  const afterPrefix = pathAndQuery.slice(PROXY_PREFIX.length)
  const nameEnd = afterPrefix.search(/[/?]/)
  const name = nameEnd === -1 ? afterPrefix : afterPrefix.slice(0, nameEnd)
  const service = services.get(name)
  if (service === undefined) {
    throw new GatewayError('unknown_service', `no service named ${JSON.stringify(decodeSafely(name))} is registered`)
  }
  const rest = nameEnd === -1 ? '' : afterPrefix.slice(nameEnd)
  const queryStart = rest.indexOf('?')
  const restPath = queryStart === -1 ? rest : rest.slice(0, queryStart)
  const query = queryStart === -1 ? '' : rest.slice(queryStart)
  const upstreamPath = service.basePath + restPath || '/'
  return { service, upstreamUrl: service.origin + upstreamPath + query, upstreamPath }
}

function decodeSafely(value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
