/**
 * How a path below a service is read for route matching (README, "Policies"): by whole
 * segments, with percent-encoded unreserved characters decoded (`/%61dmin` is `/admin`, RFC
 * 3986 §6.2.2.2) and, for a service that sets `case_sensitive: false`, folded to lower case.
 *
 * The gateway forwards the path byte-exact, and backends read odd spellings differently: Tomcat
 * takes `/public/..;/admin` for `/admin`, a backend that does not split on `%2F` sees
 * `/admin%2F..%2Fpublic` as one segment starting `admin`. So a path holding `;`, `\`, `//`,
 * `%2F` or `%5C`, or a `.` or `..` segment (raw or encoded), is ambiguous: on a service with
 * routes it is refused, never matched and never forwarded.
 */

/** Why a path is ambiguous, as the 400 and a policy file's error say it. */
export const AMBIGUOUS_PATH = 'the path holds ;, \\, //, %2F, %5C or a . or .. segment, which backends read differently'

/** RFC 3986 §2.3: the characters whose percent-encoding means nothing else. */
const UNRESERVED = /[A-Za-z0-9\-._~]/
const PERCENT = /%([0-9A-Fa-f]{2})/g

/**
 * The segments a request path below its service is matched by, or null when it is ambiguous.
 * @param rest the path after `/api/v1/<service>`, as received (`/admin/x`, or `` for the service itself).
 * @example pathSegments('/%61dmin/x', true) // ['admin', 'x']
 * @example pathSegments('/public/..;/admin', true) // null
 */
export function pathSegments(rest: string, caseSensitive: boolean): string[] | null {
  if (rest.includes(';') || rest.includes('\\') || rest.includes('//')) return null
  let decoded = rest
  if (rest.includes('%')) {
    let ambiguous = false
    decoded = rest.replace(PERCENT, (escape, hex: string) => {
      const character = String.fromCharCode(Number.parseInt(hex, 16))
      if (character === '/' || character === '\\') ambiguous = true
      return UNRESERVED.test(character) ? character : escape.toUpperCase()
    })
    if (ambiguous) return null
  }
  if (!caseSensitive) decoded = decoded.toLowerCase()
  const segments = decoded.split('/').slice(1)
  for (const segment of segments) if (segment === '.' || segment === '..') return null
  // A trailing slash names the same place as its prefix (`/admin/` is under `/admin`).
  if (segments.at(-1) === '') segments.pop()
  return segments
}

/**
 * The segments of a route's `path` in a policy file, or why it cannot be a route.
 * @example routeSegments('/Admin/', false) // ['admin']
 */
export function routeSegments(path: string, caseSensitive: boolean): string[] | string {
  if (!path.startsWith('/')) return `${JSON.stringify(path)} is not allowed; expected a path starting with /`
  const segments = pathSegments(path, caseSensitive)
  if (segments === null) return `${JSON.stringify(path)} cannot be matched: ${AMBIGUOUS_PATH}`
  return segments
}

/**
 * Whether a request's segments fall under a route's: whole segments, so `/admin` covers
 * `/admin` and `/admin/x`, never `/administrator`.
 */
export function underRoute(request: readonly string[], route: readonly string[]): boolean {
  if (route.length > request.length) return false
  for (let i = 0; i < route.length; i++) if (route[i] !== request[i]) return false
  return true
}
