/**
 * Request ids, client ids and event ids are 1–128 characters of `[A-Za-z0-9._:-]` (README,
 * "Reverse proxy" and "Event protocol"): safe in a header, a URL segment, a log line and an SSE
 * `id:` line.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The id this request is known by in logs, upstream and in the response.
 * @example requestIdFor('abc-1') // 'abc-1'
 * @example requestIdFor('bad id!') // a fresh UUID
 */
export function requestIdFor(clientValue: string | null): string {
  return clientValue !== null && IDENTIFIER_PATTERN.test(clientValue) ? clientValue : crypto.randomUUID()
}
