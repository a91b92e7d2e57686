/**
 * Answer schemas (README, "Questions"): a question's `data.response_schema` is a JSON Schema
 * (draft 2020-12), checked with Ajv, compiled once per distinct schema and kept in a bounded
 * cache, so a question asked of ten thousand people compiles once.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020'
import { RE2JS } from 're2js'
import { GatewayError } from '../http/errors'

/** A schema larger than this is refused at publish. */
export const MAX_SCHEMA_BYTES = 16 * 1024
/** Distinct schemas kept compiled; the oldest is forgotten first (and compiled again if it returns). */
const CACHED_SCHEMAS = 1_000

/** One problem with an answer: where in `response` (a JSON Pointer), and what. */
export interface AnswerProblem {
  path: string
  message: string
}

/**
 * `pattern` runs on RE2 (re2js), in time linear in the answer: a publisher's `^(a+)+$` against
 * an answer of 30 `a`s and a `!` took JavaScript's backtracking engine half a second, doubling
 * with each `a`, with the gateway's one thread stuck. RE2 has no backreferences or lookaround;
 * a schema using them is refused at publish.
 */
const linearRegExp = Object.assign(
  (pattern: string) => {
    const compiled = RE2JS.compile(pattern)
    return { test: (text: string) => compiled.test(text), toString: () => `re2:${pattern}` }
  },
  { code: 're2' },
)

// strict: false: unknown keywords (`title`, `x-ui`) are annotations, as the draft says, not errors.
const newAjv = () => new Ajv2020({ allErrors: true, strict: false, code: { regExp: linearRegExp } })

interface Compiled {
  validate: ValidateFunction
  /** The Ajv instance that compiled it (see `compileAlone`). */
  by: Ajv2020
}

/** Schema text → its validator, most recently used last. */
const compiled = new Map<string, Compiled>()
let current = newAjv()
let compiledByCurrent = 0

/**
 * Compiles `schema`, leaving as little of it in Ajv as Ajv allows. Ajv keeps every schema it
 * compiled, each `$id` inside one, and the values of its generated code, for the life of the
 * instance: that would grow with every distinct schema ever published (2.7 KB each), and a
 * second schema reusing an `$id` would be refused. So the schema and its ids are removed after
 * compiling, and every CACHED_SCHEMAS compiles a new instance takes over; a cached validator
 * of an older one is compiled again when next used, so no old instance outlives the cache.
 */
function compileAlone(schema: object): Compiled {
  if (compiledByCurrent >= CACHED_SCHEMAS) {
    current = newAjv()
    compiledByCurrent = 0
  }
  compiledByCurrent++
  const ajv = current
  const before = new Set(Object.keys(ajv.refs))
  try {
    return { validate: ajv.compile(schema), by: ajv }
  } finally {
    ajv.removeSchema(schema)
    for (const ref of Object.keys(ajv.refs)) if (!before.has(ref)) delete ajv.refs[ref]
  }
}

function validatorOf(schema: object): ValidateFunction {
  const text = JSON.stringify(schema)
  let entry = compiled.get(text)
  // Most recently used last: the first key is the one to forget.
  compiled.delete(text)
  if (entry === undefined || entry.by !== current) entry = compileAlone(schema)
  compiled.set(text, entry)
  if (compiled.size > CACHED_SCHEMAS) compiled.delete(compiled.keys().next().value!)
  return entry.validate
}

/**
 * A published schema, checked: an object of at most 16 KiB that Ajv compiles.
 * @throws GatewayError `bad_request` naming what is wrong.
 */
export function checkSchema(schema: unknown): object {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new GatewayError('bad_request', 'data.response_schema must be a JSON Schema object')
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) throw new GatewayError('bad_request', `data.response_schema is larger than ${MAX_SCHEMA_BYTES} bytes`)
  let validate: ValidateFunction
  try {
    validate = validatorOf(schema)
  } catch (error) {
    throw new GatewayError('bad_request', `data.response_schema is not a valid JSON Schema (draft 2020-12): ${(error as Error).message}`)
  }
  // An asynchronous schema answers with a promise, which would read as "valid" (and reject unhandled).
  if ((validate as { $async?: boolean }).$async === true) throw new GatewayError('bad_request', 'data.response_schema may not be asynchronous ($async)')
  return schema
}

/**
 * What is wrong with `response` under `schema`; empty when nothing is.
 * @example problemsOf({ type: 'boolean' }, 'yes') // [{ path: '', message: 'must be boolean' }]
 */
export function problemsOf(schema: object, response: unknown): AnswerProblem[] {
  const validate = validatorOf(schema)
  let valid: boolean
  try {
    valid = validate(response) as boolean
  } catch (error) {
    // A self-referencing schema walks the answer as deep as it goes: past the stack, the answer is refused, not the gateway.
    if (error instanceof RangeError) return [{ path: '', message: 'is nested too deeply to be checked' }]
    throw error
  }
  if (valid) return []
  return (validate.errors ?? []).map((error) => ({
    path: error.instancePath,
    message: error.keyword === 'additionalProperties' ? `${error.message}: ${(error.params as { additionalProperty: string }).additionalProperty}` : (error.message ?? 'not allowed'),
  }))
}
