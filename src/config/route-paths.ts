/**
 * How a path below a service is read for route matching (README, "Policies"): by whole
 * segments, in one canonical spelling, and, for a service that sets `case_sensitive: false`,
 * folded to lower case.
 *
 * The gateway forwards the path byte-exact, and backends read odd spellings differently: Tomcat
 * takes `/public/..;/admin` for `/admin`; a backend that does not split on `%2F` sees
 * `/admin%2F..%2Fpublic` as one segment starting `admin`; Go, Spring, Django and Rails decode
 * `/items%3Abatch` to `/items:batch` before routing, others do not. So the canonical spelling:
 *
 * - decodes percent-encoded unreserved characters (RFC 3986 §6.2.2.2: `/%61dmin` is `/admin`);
 * - writes every character that may not stand raw in a path (a space, `"`, `{`, non-ASCII…)
 *   percent-encoded, in upper case, whichever way it came: there is only one way to send it;
 * - and calls ambiguous, so refused on a service with routes (never matched, never forwarded),
 *   a path holding `;`, `\`, `//`, an encoded reserved character (`%2F`, `%5C`, `%3A`, `%40`,
 *   `%3B`…: backends disagree on whether it means the character), `%25` (a backend that decodes
 *   twice), an encoded control character (`%00`: C backends end the path there), or a `.` or
 *   `..` segment, raw or encoded.
 */

/** Why a path is ambiguous, as the 400 and a policy file's error say it. */
export const AMBIGUOUS_PATH =
  'the path holds ;, \\, //, a percent-encoded reserved or control character (%2F, %5C, %3A, %25, %00…) or a . or .. segment, which backends read differently'

/** What an ASCII character is in a path (RFC 3986 §2.2, §2.3): by code, looked up once per character. */
const enum Kind {
  /** Must be percent-encoded to stand in a path: a space, `"`, `{`, controls… */
  Encoded = 0,
  Unreserved = 1,
  /** A reserved character: meaningful raw, so its encoded form may mean something else. */
  Reserved = 2,
}
const KIND = new Uint8Array(128)
for (const character of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') KIND[character.charCodeAt(0)] = Kind.Unreserved
for (const character of ":/?#[]@!$&'()*+,;=") KIND[character.charCodeAt(0)] = Kind.Reserved
/** A path that is canonical as it is: only unreserved characters, raw reserved ones but `;`, and `/`. */
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/
const HEX = /^[0-9A-Fa-f]{2}$/

/**
 * The segments a request path below its service is matched by, or null when it is ambiguous.
 * @param rest the path after `/api/v1/<service>`, as received (`/admin/x`, or `` for the service itself).
 * @example pathSegments('/%61dmin/x', true) // ['admin', 'x']
 * @example pathSegments('/public/..;/admin', true) // null
 */
export function pathSegments(rest: string, caseSensitive: boolean): string[] | null {
  if (rest.includes(';') || rest.includes('\\') || rest.includes('//')) return null
  let canonical = PLAIN.test(rest) ? rest : canonicalSpelling(rest)
  if (canonical === null) return null
  if (!caseSensitive) canonical = canonical.toLowerCase()
  const segments = canonical.split('/').slice(1)
  for (const segment of segments) if (segment === '.' || segment === '..') return null
  // A trailing slash names the same place as its prefix (`/admin/` is under `/admin`).
  if (segments.at(-1) === '') segments.pop()
  return segments
}

/** One spelling for every way of writing the same path, or null when backends could read it two ways. */
function canonicalSpelling(path: string): string | null {
  let out = ''
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code !== 0x25 /* % */) {
      if (code < 128 && KIND[code] !== Kind.Encoded) {
        out += path[i]
        continue
      }
      const encoded = encodeRaw(path, i)
      if (encoded === null) return null
      out += encoded
      // A character outside the Basic Multilingual Plane takes two UTF-16 units.
      if (code >= 0xd800 && code <= 0xdbff) i++
      continue
    }
    const hex = path.slice(i + 1, i + 3)
    // Malformed escapes are refused by the proxy's route step before anything is matched.
    if (!HEX.test(hex)) return null
    const byte = Number.parseInt(hex, 16)
    // `%25` (a backend decoding twice), controls, reserved characters and `\`: not one reading.
    if (byte < 0x20 || byte === 0x7f || byte === 0x25 || byte === 0x5c || (byte < 128 && KIND[byte] === Kind.Reserved)) return null
    out += byte < 128 && KIND[byte] === Kind.Unreserved ? String.fromCharCode(byte) : `%${hex.toUpperCase()}`
    i += 2
  }
  return out
}

/** The character at `at`, which may not stand raw in a path, percent-encoded as a client would send it; null for a lone surrogate. */
function encodeRaw(path: string, at: number): string | null {
  const code = path.charCodeAt(at)
  const whole = code >= 0xd800 && code <= 0xdbff ? path.slice(at, at + 2) : path[at]!
  try {
    return encodeURIComponent(whole)
  } catch {
    return null
  }
}

/**
 * The segments of a route's `path` in a policy file, or why it cannot be a route. The path may
 * be written raw (`/café`) or encoded (`/caf%C3%A9`): both match the same requests.
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
