/**
 * The request headers a backend receives (README, "Reverse proxy"): the client's, minus
 * hop-by-hop, plus the forwarding headers.
 */
import { dropHopByHop } from '../http/hop-by-hop'

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


