/**
 * The request headers a backend receives (README, "Reverse proxy", "Headers a backend can
 * trust"): the client's, minus hop-by-hop, minus what only the gateway or a trusted proxy may
 * say, plus the forwarding headers.
 */
import { dropHopByHop } from '../http/hop-by-hop'

/** Who the gateway authenticated (README, "Authentication"); only the gateway may say. */
export const AUTH_SUBJECT_HEADER = 'x-auth-subject'

/**
 * Headers that describe the client, the scheme or the path the client asked for, which
 * backends (Spring, Jetty, Undertow, IIS, Symfony) believe. From a client they are lies; from
 * a proxy in `TRUST_PROXY` they are that proxy's word, and passed on.
 */
const PROXY_ONLY: ReadonlySet<string> = new Set(['forwarded', 'x-forwarded-port', 'x-forwarded-prefix', 'x-original-url', 'x-rewrite-url'])

/** Headers the gateway sets itself: a client's own value never survives. */
const GATEWAY_SET: ReadonlySet<string> = new Set([AUTH_SUBJECT_HEADER, 'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'])

/** What the forwarding headers are made of: one request's context. */
export interface Forwarding {
  /** The socket peer, appended to `X-Forwarded-For`. */
  peerIp: string
  /** The client IP after `TRUST_PROXY` resolution: `X-Real-IP`. */
  clientIp: string
  /** The peer is a trusted proxy: its `Forwarded`, `X-Forwarded-Prefix`, ... are passed on. */
  peerTrusted: boolean
  requestId: string
  /** The token's `sub`, when authentication is on; a client's own `X-Auth-Subject` is dropped either way. */
  principal?: { subject: string }
}

/**
 * Turns the client's headers, in place (no copy on the hot path), into those a backend receives:
 * minus hop-by-hop and forged identity, plus `X-Forwarded-*`, `X-Real-IP`, `X-Request-Id` and
 * `X-Auth-Subject`.
 * @param proto `http` or `https`: how the client reached the gateway; a client's own value is replaced.
 * @example prepareUpstreamHeaders(request.headers, ctx, 'https')
 */
export function prepareUpstreamHeaders(incoming: Headers, forwarding: Forwarding, proto: string): Headers {
  const headers = dropHopByHop(incoming)
  dropForgeries(headers, forwarding.peerTrusted)
  const subject = forwarding.principal?.subject
  if (subject === undefined) headers.delete(AUTH_SUBJECT_HEADER)
  else headers.set(AUTH_SUBJECT_HEADER, subject)
  const host = headers.get('host')
  // The backend's own Host comes from its URL (nginx's default `proxy_set_header Host $proxy_host`).
  headers.delete('host')
  const forwardedFor = headers.get('x-forwarded-for')
  headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${forwarding.peerIp}` : forwarding.peerIp)
  headers.set('x-forwarded-proto', proto)
  if (host !== null) headers.set('x-forwarded-host', host)
  headers.set('x-real-ip', forwarding.clientIp)
  headers.set('x-request-id', forwarding.requestId)
  return headers
}

/**
 * One pass over the names: the proxy-only headers unless the peer is trusted, and any spelling
 * with `_` of a gateway or proxy header, which CGI, WSGI and Rack backends read as the same
 * variable (`X_Real_IP` is `HTTP_X_REAL_IP`; nginx drops such names for this reason,
 * `underscores_in_headers off`). The gateway's own values are set afterwards.
 */
function dropForgeries(headers: Headers, peerTrusted: boolean): void {
  let forged: string[] | undefined
  for (const name of headers.keys()) {
    const spelled = name.includes('_') ? name.replaceAll('_', '-') : name
    const lookalike = spelled !== name && (GATEWAY_SET.has(spelled) || PROXY_ONLY.has(spelled))
    if (lookalike || (!peerTrusted && PROXY_ONLY.has(name))) (forged ??= []).push(name)
  }
  if (forged !== undefined) for (const name of forged) headers.delete(name)
}

