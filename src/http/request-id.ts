/** SPEC §4: a client's id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]`. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The id this request is known by in logs, upstream and in the response.
 * @example requestIdFor('abc-1') // 'abc-1'
 * @example requestIdFor('bad id!') // a fresh UUID
 */
export function requestIdFor(clientValue: string | null): string {
  return clientValue !== null && VALID_REQUEST_ID.test(clientValue) ? clientValue : crypto.randomUUID()
}

/** The same charset rule, reused for SSE client ids (SPEC §6). */
export function isValidIdentifier(value: string): boolean {
  return VALID_REQUEST_ID.test(value)
}
