/**
 * Request ids, client ids and event ids are 1–128 characters of `[A-Za-z0-9._:-]` (README,
 * "Reverse proxy" and "Event protocol"): safe in a header, a URL segment, a log line and an SSE
 * `id:` line.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * New ids are this process's random prefix and a counter: unique across processes (48 random
 * bits each) and within one, and cheaper than a UUID per request on the hot path.
 */
const PREFIX = Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString('hex')
let issued = 0

/**
 * The id this request is known by in logs, upstream and in the response.
 * @example requestIdFor('abc-1') // 'abc-1'
 * @example requestIdFor('bad id!') // a fresh id such as '9f86d081884c-1a2b'
 */
export function requestIdFor(clientValue: string | null): string {
  if (clientValue !== null && IDENTIFIER_PATTERN.test(clientValue)) return clientValue
  return `${PREFIX}-${(++issued).toString(36)}`
}
