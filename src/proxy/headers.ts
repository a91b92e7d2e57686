/**
 * The request headers a backend receives (README, "Reverse proxy"): the client's, minus
 * hop-by-hop, plus the forwarding headers.
 */
import { dropHopByHop } from '../http/hop-by-hop'

/** Who the gateway authenticated (README, "Authentication"); only the gateway may say. */
export const AUTH_SUBJECT_HEADER = 'x-auth-subject'
/**
 * Spellings many backends (CGI, WSGI, Rack: `HTTP_X_AUTH_SUBJECT`) read as the same header.
 * nginx drops every name with `_` for this reason (`underscores_in_headers off`).
 */
const AUTH_SUBJECT_LOOKALIKES = ['x_auth_subject', 'x-auth_subject', 'x_auth-subject']

/**
 * Turns the client's headers, in place (no copy on the hot path), into those a backend receives:
 * minus hop-by-hop, plus `X-Forwarded-*`, `X-Request-Id` and `X-Auth-Subject`.
 * @param peerIp the socket peer, appended to `X-Forwarded-For`.
 * @param proto `http` or `https`: how the client reached the gateway; a client's own value is replaced.
 * @param subject the token's `sub`; a client's own `X-Auth-Subject` is dropped either way.
 * @example prepareUpstreamHeaders(request.headers, '10.0.0.9', 'https', 'r1', 'alice')
 */
export function prepareUpstreamHeaders(incoming: Headers, peerIp: string, proto: string, requestId: string, subject?: string): Headers {
  const headers = dropHopByHop(incoming)
  // A spoofed identity must never reach a backend, under any spelling.
  if (subject === undefined) headers.delete(AUTH_SUBJECT_HEADER)
  else headers.set(AUTH_SUBJECT_HEADER, subject)
  for (const lookalike of AUTH_SUBJECT_LOOKALIKES) headers.delete(lookalike)
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


