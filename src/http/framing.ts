/**
 * Message framing the gateway refuses instead of forwarding (RFC 9112 §6.3): when two headers
 * could disagree about where a body ends, the gateway and a backend might read different
 * requests from the same bytes (request smuggling).
 */
import { GatewayError } from './errors'

/** RFC 9112 §6.3: invalid framing is unrecoverable, so the connection closes after the 400. */
const CLOSE = { connection: 'close' }

/**
 * The declared body length, or null when there is none.
 *
 * Bun's parser already refuses `Content-Length` together with `Transfer-Encoding` and a single
 * `Content-Length: 5, 6`, with a bare 400. Two `Content-Length` headers reach the gateway joined
 * as `5, 5`, and both kinds are refused here with a JSON 400 whether or not the values agree.
 * @example declaredLength(new Headers({ 'content-length': '12' })) // 12
 * @throws GatewayError `bad_request` for ambiguous framing.
 */
export function declaredLength(headers: Headers): number | null {
  const declared = headers.get('content-length')
  if (declared === null) return null
  if (declared.includes(',')) throw new GatewayError('bad_request', 'ambiguous framing: more than one Content-Length header', CLOSE)
  if (headers.has('transfer-encoding')) throw new GatewayError('bad_request', 'ambiguous framing: both Content-Length and Transfer-Encoding', CLOSE)
  return Number(declared)
}
