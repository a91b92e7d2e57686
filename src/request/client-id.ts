/**
 * The `:client_id` of an event route (README, "Subscribe"): percent-decoded once, and
 * 1–128 characters of `[A-Za-z0-9._:-]` once decoded (`al%69ce` is `alice`), else 400.
 */
import { GatewayError } from '../http/errors'
import { IDENTIFIER_PATTERN } from '../http/request-id'
import type { RequestContext } from './context'

/**
 * @example clientIdOf(ctx) // 'alice' for GET /api/v1/events/al%69ce
 * @throws GatewayError `bad_request` when it does not decode or breaks the rule.
 */
export function clientIdOf(ctx: RequestContext): string {
  if (ctx.clientId !== undefined) return ctx.clientId
  let decoded: string
  try {
    decoded = decodeURIComponent(ctx.url.slice(ctx.paramStart, ctx.paramEnd))
  } catch {
    throw new GatewayError('bad_request', 'client_id is not valid percent-encoding')
  }
  if (!IDENTIFIER_PATTERN.test(decoded)) throw new GatewayError('bad_request', 'client_id must be 1-128 characters of [A-Za-z0-9._:-]')
  ctx.clientId = decoded
  return decoded
}
