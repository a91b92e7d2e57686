/**
 * Where a request carries its token (README, "Authentication"): `Authorization: Bearer` first
 * and alone when present; else, for `EventSource`, which cannot set headers, the
 * `access_token` query parameter or the token cookie.
 */

/** RFC 6750 §2.3: the query parameter a token may travel in. */
export const QUERY_TOKEN_PARAMETER = 'access_token'

/** RFC 6750 §2.1: `Bearer` (any case), then the token. */
const BEARER = /^bearer[ \t]+/i

/** What a request presented. */
export type PresentedToken =
  /** A token, and where it was: a cookie is sent by the browser on its own (see Authenticator's CSRF check). */
  | { kind: 'token'; token: string; from: 'header' | 'query' | 'cookie' }
  /** Nothing usable: no credentials, or an `Authorization` header of another scheme (RFC 6750 §3.1: no error code). */
  | { kind: 'missing' }

const MISSING: PresentedToken = { kind: 'missing' }

/** What a request shows of its credentials: its headers and its URL (the query may hold a token). */
export interface CredentialSource {
  readonly url: string
  readonly headers: Headers
}

/**
 * @param cookieName `AUTH_COOKIE`.
 * @example presentedToken(request, 'access_token') // { kind: 'token', token: 'eyJ…', from: 'header' }
 */
export function presentedToken(request: CredentialSource, cookieName: string): PresentedToken {
  const authorization = request.headers.get('authorization')
  if (authorization !== null) {
    const scheme = BEARER.exec(authorization)
    return scheme === null ? MISSING : { kind: 'token', token: authorization.slice(scheme[0].length).trim(), from: 'header' }
  }
  const queryStart = request.url.indexOf('?')
  const fromQuery = queryStart === -1 ? null : queryToken(request.url.slice(queryStart + 1))
  if (fromQuery !== null) return { kind: 'token', token: fromQuery, from: 'query' }
  const cookies = request.headers.get('cookie')
  const fromCookie = cookies === null ? null : new Bun.CookieMap(cookies).get(cookieName)
  return fromCookie ? { kind: 'token', token: fromCookie, from: 'cookie' } : MISSING
}

/**
 * The value of the first non-empty `access_token` parameter of a raw query (no `?`), percent-decoded.
 * @example queryToken('a=1&access_token=eyJ.x.y') // 'eyJ.x.y'
 */
export function queryToken(query: string): string | null {
  if (!mayHoldQueryToken(query)) return null
  for (const pair of query.split('&')) {
    const equals = pair.indexOf('=')
    if (equals === -1 || !isQueryTokenName(pair.slice(0, equals))) continue
    const value = decodedComponent(pair.slice(equals + 1))
    if (value !== '') return value
  }
  return null
}

/**
 * A request target (path and query, as received) without its `access_token` parameters, however
 * their names are percent-encoded (backends decode them); every other byte stays as it was, and
 * a query left empty loses its `?`.
 * @example withoutQueryToken('/jobs?a=1&access_token=eyJ.x.y&b=%20') // '/jobs?a=1&b=%20'
 */
export function withoutQueryToken(target: string): string {
  const queryStart = target.indexOf('?')
  if (queryStart === -1 || !mayHoldQueryToken(target.slice(queryStart + 1))) return target
  const kept = target
    .slice(queryStart + 1)
    .split('&')
    .filter((pair) => {
      const equals = pair.indexOf('=')
      return !isQueryTokenName(equals === -1 ? pair : pair.slice(0, equals))
    })
  const query = kept.join('&')
  return query.replaceAll('&', '') === '' ? target.slice(0, queryStart) : `${target.slice(0, queryStart)}?${query}`
}

/** Cheap first look: the plain name, or any percent-encoding that might spell it. */
function mayHoldQueryToken(query: string): boolean {
  return query.includes(QUERY_TOKEN_PARAMETER) || query.includes('%')
}

/** Whether a raw parameter name means `access_token` once decoded, as a backend would decode it. */
function isQueryTokenName(rawName: string): boolean {
  return rawName === QUERY_TOKEN_PARAMETER || (rawName.includes('%') && decodedComponent(rawName) === QUERY_TOKEN_PARAMETER)
}

/** application/x-www-form-urlencoded decoding of one component; malformed escapes stay as written. */
function decodedComponent(raw: string): string {
  const spaced = raw.includes('+') ? raw.replaceAll('+', ' ') : raw
  if (!spaced.includes('%')) return spaced
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced
  }
}
