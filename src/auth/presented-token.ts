/**
 * Where a request carries its token (README, "Authentication"): `Authorization: Bearer` first
 * and alone when present; else, for `EventSource`, which cannot set headers, the
 * `access_token` query parameter or the token cookie.
 */
import type { RequestContext } from '../pipeline/context'

/** RFC 6750 §2.3: the query parameter a token may travel in. */
export const QUERY_TOKEN_PARAMETER = 'access_token'

/** RFC 6750 §2.1: `Bearer` (any case), then the token. */
const BEARER = /^bearer[ \t]+/i

/** What a request presented. */
export type PresentedToken =
  /** A token, from the header, the query or the cookie. */
  | { kind: 'token'; token: string }
  /** Nothing usable: no credentials, or an `Authorization` header of another scheme (RFC 6750 §3.1: no error code). */
  | { kind: 'missing' }

const MISSING: PresentedToken = { kind: 'missing' }

/**
 * @param cookieName `AUTH_COOKIE`.
 * @example presentedToken(ctx, 'access_token') // { kind: 'token', token: 'eyJ…' }
 */
export function presentedToken(ctx: RequestContext, cookieName: string): PresentedToken {
  const authorization = ctx.headers.get('authorization')
  if (authorization !== null) {
    const scheme = BEARER.exec(authorization)
    return scheme === null ? MISSING : { kind: 'token', token: authorization.slice(scheme[0].length).trim() }
  }
  const fromQuery = ctx.pathEnd < ctx.url.length ? queryToken(ctx.url.slice(ctx.pathEnd + 1)) : null
  if (fromQuery !== null) return { kind: 'token', token: fromQuery }
  const cookies = ctx.headers.get('cookie')
  const fromCookie = cookies === null ? null : new Bun.CookieMap(cookies).get(cookieName)
  return fromCookie ? { kind: 'token', token: fromCookie } : MISSING
}

/**
 * The value of the first `access_token` parameter of a raw query (no `?`), percent-decoded.
 * @example queryToken('a=1&access_token=eyJ.x.y') // 'eyJ.x.y'
 */
export function queryToken(query: string): string | null {
  for (const pair of query.split('&')) {
    if (parameterName(pair) !== QUERY_TOKEN_PARAMETER) continue
    const value = pair.slice(QUERY_TOKEN_PARAMETER.length + 1)
    try {
      return decodeURIComponent(value.replaceAll('+', ' '))
    } catch {
      return value
    }
  }
  return null
}

/**
 * A request target (path and query, as received) without its `access_token` parameters; every
 * other byte stays as it was, and a query left empty loses its `?`.
 * @example withoutQueryToken('/jobs?a=1&access_token=eyJ.x.y&b=%20') // '/jobs?a=1&b=%20'
 */
export function withoutQueryToken(target: string): string {
  const queryStart = target.indexOf('?')
  if (queryStart === -1 || !target.includes(QUERY_TOKEN_PARAMETER, queryStart)) return target
  const kept = target
    .slice(queryStart + 1)
    .split('&')
    .filter((pair) => parameterName(pair) !== QUERY_TOKEN_PARAMETER)
  return kept.length === 0 ? target.slice(0, queryStart) : `${target.slice(0, queryStart)}?${kept.join('&')}`
}

/** The raw name of `name=value` (or of a bare `name`). */
function parameterName(pair: string): string {
  const equals = pair.indexOf('=')
  return equals === -1 ? pair : pair.slice(0, equals)
}
