/**
 * The proxy's header rules in each direction (README, "Reverse proxy"; RFC 9110 §7.6.1).
 */

/** RFC 9110 §7.6.1: connection-specific headers, never forwarded (plus the legacy `Proxy-Connection`). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
] as const

/** RFC 9110 §5.1 token: anything else in `Connection` names no header. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Removes the hop-by-hop headers and every header that `Connection` names. Runs before any
 * forwarding header is added, so `Connection: x-forwarded-for` cannot delete what we add.
 */
export function dropHopByHop(headers: Headers): Headers {
  const named = headers.get('connection')
  if (named !== null) {
    for (const token of named.split(',')) {
      const name = token.trim()
      if (HEADER_NAME.test(name)) headers.delete(name)
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name)
  return headers
}

/**
 * Turns the client's headers, in place (no copy on the hot path), into those a backend receives:
 * minus hop-by-hop, plus `X-Forwarded-*` and `X-Request-Id`.
 * @param peerIp the socket peer, appended to `X-Forwarded-For`.
 * @param proto `http` or `https`: how the client reached the gateway.
 * @example prepareUpstreamHeaders(request.headers, '10.0.0.9', 'http', 'r1')
 */
export function prepareUpstreamHeaders(incoming: Headers, peerIp: string, proto: string, requestId: string): Headers {
  const headers = dropHopByHop(incoming)
  const host = headers.get('host')
  // The backend's own Host comes from its URL (nginx's default `proxy_set_header Host $proxy_host`).
  headers.delete('host')
  const forwardedFor = headers.get('x-forwarded-for')
  headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${peerIp}` : peerIp)
  headers.set('x-forwarded-proto', proto)
  if (host !== null) headers.set('x-forwarded-host', host)
  headers.set('x-request-id', requestId)
  return headers
}

/**
 * The backend's response headers made fit for the client, in place (the response is handed on
 * as it is, without a copy): all but hop-by-hop, `Set-Cookie` kept apart.
 */
export function toDownstreamHeaders(upstream: Headers): Headers {
  return dropHopByHop(upstream)
}
