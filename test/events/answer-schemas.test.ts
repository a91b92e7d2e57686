/** Answer schemas (src/events/answer-schemas.ts): Ajv's compiled state stays bounded, and one publisher's `$id` never blocks another's schema. */
import { describe, expect, test } from 'bun:test'
import { checkSchema, problemsOf } from '../../src/events/answer-schemas'
import { GatewayError } from '../../src/http/errors'

const heapAfterGc = () => {
  Bun.gc(true)
  return process.memoryUsage().heapUsed
}

describe('answer schemas', () => {
  test('thousands of distinct schemas leave the heap where it was: compiled state is bounded by the cache', () => {
    const distinct = (n: number) => ({ type: 'object', properties: { n: { type: 'integer', maximum: n } }, required: ['n'] })
    for (let i = 0; i < 3_000; i++) checkSchema(distinct(i))
    const before = heapAfterGc()
    for (let i = 3_000; i < 15_000; i++) checkSchema(distinct(i))
    // Ajv alone keeps about 2.7 KB per schema it ever compiled: 12,000 would be some 32 MB.
    expect(heapAfterGc() - before).toBeLessThan(10 * 1024 * 1024)
    // Still correct for a schema compiled long ago and one just compiled.
    expect(problemsOf(distinct(5), { n: 6 })).toEqual([{ path: '/n', message: 'must be <= 5' }])
    expect(problemsOf(distinct(14_999), { n: 6 })).toEqual([])
  }, 60_000)

  test('two different schemas with the same $id are both accepted, each checking its own rules', () => {
    const first = { $id: 'https://example.com/answer', type: 'boolean' }
    const second = { $id: 'https://example.com/answer', type: 'object', properties: { ok: { $id: 'ok', type: 'boolean' } }, required: ['ok'] }
    expect(checkSchema(first)).toBe(first)
    expect(checkSchema(second)).toBe(second)
    expect(problemsOf(first, true)).toEqual([])
    expect(problemsOf(second, {})).toEqual([{ path: '', message: "must have required property 'ok'" }])
  })

  test('a local $ref resolves; an invalid or oversized schema is refused with 400', () => {
    const withRef = { type: 'object', properties: { n: { $ref: '#/$defs/small' } }, $defs: { small: { type: 'integer', maximum: 3 } } }
    checkSchema(withRef)
    expect(problemsOf(withRef, { n: 4 })).toEqual([{ path: '/n', message: 'must be <= 3' }])
    for (const bad of [{ type: 'nonsense' }, { minimum: 'one' }, [], 'string', { type: 'string', description: 'x'.repeat(17 * 1024) }]) {
      expect(() => checkSchema(bad)).toThrow(GatewayError)
    }
  })
})
