/**
 * Answer schemas (README, "Questions"): a question's `data.response_schema` is a JSON Schema
 * (draft 2020-12), checked with Ajv, compiled once per distinct schema and kept in a bounded
 * cache, so a question asked of ten thousand people compiles once.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020'
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

// strict: false: unknown keywords (`title`, `x-ui`) are annotations, as the draft says, not errors.
const ajv = new Ajv2020({ allErrors: true, strict: false })
const compiled = new Map<string, ValidateFunction>()

function validatorOf(schema: object): ValidateFunction {
  const text = JSON.stringify(schema)
  let validate = compiled.get(text)
  if (validate !== undefined) {
    // Most recently used last: the first key is the one to forget.
    compiled.delete(text)
    compiled.set(text, validate)
    return validate
  }
  validate = ajv.compile(schema)
  compiled.set(text, validate)
  if (compiled.size > CACHED_SCHEMAS) compiled.delete(compiled.keys().next().value!)
  return validate
}

/**
 * A published schema, checked: an object of at most 16 KiB that Ajv compiles.
 * @throws GatewayError `bad_request` naming what is wrong.
 */
export function checkSchema(schema: unknown): object {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new GatewayError('bad_request', 'data.response_schema must be a JSON Schema object')
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) throw new GatewayError('bad_request', `data.response_schema is larger than ${MAX_SCHEMA_BYTES} bytes`)
  try {
    validatorOf(schema)
  } catch (error) {
    throw new GatewayError('bad_request', `data.response_schema is not a valid JSON Schema (draft 2020-12): ${(error as Error).message}`)
  }
  return schema
}

/**
 * What is wrong with `response` under `schema`; empty when nothing is.
 * @example problemsOf({ type: 'boolean' }, 'yes') // [{ path: '', message: 'must be boolean' }]
 */
export function problemsOf(schema: object, response: unknown): AnswerProblem[] {
  const validate = validatorOf(schema)
  if (validate(response)) return []
  return (validate.errors ?? []).map((error) => ({
    path: error.instancePath,
    message: error.keyword === 'additionalProperties' ? `${error.message}: ${(error.params as { additionalProperty: string }).additionalProperty}` : (error.message ?? 'not allowed'),
  }))
}
