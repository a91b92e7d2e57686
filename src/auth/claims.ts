/**
 * A route's `require` (README, "Policies"): which claims a token must hold. A claim holds a
 * value when it equals it, when it is an array holding it, or when it is a string holding it as
 * one of its space-separated words (OAuth's `scope`, RFC 6749 §3.3); a list of values means any
 * one of them, several claims mean all of them.
 */
import type { JWTPayload } from 'jose'
import type { ClaimRequirement } from '../config/policies'

/** RFC 6749 §3.3: scope tokens are separated by spaces. */
const WORDS = / +/

/**
 * The first requirement `claims` does not meet, or undefined when they meet every one.
 * @example holdsClaims({ scope: 'read write' }, [{ claim: 'scope', values: ['write'] }]) // undefined
 */
export function holdsClaims(claims: JWTPayload, requirements: readonly ClaimRequirement[]): ClaimRequirement | undefined {
  for (const requirement of requirements) {
    const held = claims[requirement.claim]
    if (!requirement.values.some((value) => holds(held, value))) return requirement
  }
  return undefined
}

function holds(held: unknown, value: string | number | boolean): boolean {
  if (held === value) return true
  if (Array.isArray(held)) return held.includes(value)
  return typeof held === 'string' && typeof value === 'string' && held.includes(' ') && held.split(WORDS).includes(value)
}
