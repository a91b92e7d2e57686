/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: an
 * intermediary drops them in both directions, along with every header that `Connection` names.
 */

/** RFC 9110 §7.6.1: connection-specific headers, never forwarded (plus the legacy `Proxy-Connection`). */
export const HOP_BY_HOP = [
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
