/** A policy's header rules (README, "Policies", headers), applied to a request or a response. */

/** Header rules of one direction: names lower-cased; `set` replaces or adds, `remove` drops. */
export interface HeaderRules {
  set: readonly (readonly [name: string, value: string])[]
  remove: readonly string[]
}

/**
 * A policy's header rules (README, "Policies"), in place: `remove` drops, `set` replaces or adds.
 * The rules never name a header the gateway owns, so they cannot undo its own.
 * @example applyHeaderRules(response.headers, { set: [['cache-control', 'no-store']], remove: ['server'] })
 */
export function applyHeaderRules(headers: Headers, rules: HeaderRules): void {
  for (const name of rules.remove) headers.delete(name)
  for (const [name, value] of rules.set) headers.set(name, value)
}
