/**
 * Validation of what publishers and answering people send (README, "Publish" and "Answer"). Each function turns an
 * untrusted JSON object into a typed request or throws a `bad_request` naming the field.
 */
import { GatewayError } from '../http/errors'
import { IDENTIFIER_PATTERN } from '../http/request-id'
import { checkSchema, problemsOf } from './answer-schemas'
import { EVENT_TYPE_PATTERN, QUESTION_EVENT_TYPE, RESERVED_EVENT_TYPES } from './envelope'
import type { QuestionSpec } from './questions'

export interface PublishRequest {
  eventType: string
  data: unknown
  /** The publisher's own id (idempotent retries), if any. */
  id?: string
  /** Broadcast form only: absent means every connected client. */
  clientIds?: string[]
  /** A question's rules, checked (targets filled in by `questionSpec`). */
  question?: Omit<QuestionSpec, 'clientIds'>
}

/** What publishing needs to know to check a question: its time, and `QUESTION_TTL_MS`. */
export interface QuestionLimits {
  now: number
  questionTtlMs: number
}

/** ISO-8601 date and time with a zone (RFC 3339): `Date.parse` alone also takes `2030` or `Dec 4`. */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/

/** A deadline comes at least this long after the publish (README, "Questions", deadlines). */
const MIN_DEADLINE_MS = 1_000

export interface AnswerRequest {
  questionId: string
  /** The whole body, forwarded to the hitl service. */
  body: Record<string, unknown>
}

/**
 * A question id is an identifier like a client id, and never a dot segment: it is substituted
 * into `HITL_RESPONSE_PATH`, where `.` or `..` would move the answer to another path of `hitl`.
 */
function isQuestionId(value: unknown): value is string {
  return typeof value === 'string' && IDENTIFIER_PATTERN.test(value) && value !== '.' && value !== '..'
}
const QUESTION_ID_RULE = '1-128 characters of [A-Za-z0-9._:-], and not . or ..'

const invalid = (message: string) => new GatewayError('bad_request', message)

/**
 * @example parsePublish({ event_type: 'run.progress', data: { pct: 5 } }, false)
 */
export function parsePublish(body: Record<string, unknown>, broadcast: boolean, limits: QuestionLimits): PublishRequest {
  const { event_type: eventType, data = null, id, client_ids: clientIds } = body
  if (typeof eventType !== 'string' || !EVENT_TYPE_PATTERN.test(eventType)) {
    throw invalid('event_type must be 1-64 characters of [A-Za-z0-9._:-]')
  }
  if (RESERVED_EVENT_TYPES.has(eventType)) throw invalid(`event_type ${eventType} is reserved by the gateway`)
  if (id !== undefined && (typeof id !== 'string' || !IDENTIFIER_PATTERN.test(id))) {
    throw invalid('id must be 1-128 characters of [A-Za-z0-9._:-]')
  }
  const request: PublishRequest = { eventType, data, id: id as string | undefined }
  if (broadcast && clientIds !== undefined) {
    if (!Array.isArray(clientIds) || !clientIds.every((c) => typeof c === 'string' && IDENTIFIER_PATTERN.test(c))) {
      throw invalid('client_ids must be an array of client ids (1-128 characters of [A-Za-z0-9._:-])')
    }
    request.clientIds = [...new Set(clientIds as string[])]
  }
  if (eventType === QUESTION_EVENT_TYPE) request.question = parseQuestion(data, broadcast ? request.clientIds : undefined, limits)
  return request
}

/**
 * A question's data, checked (README, "Questions"): its id, its answer schema, its deadline
 * and default response, and for approvals the answers required of the listed clients.
 * @param listed the broadcast form's explicit `client_ids`; undefined for one client or every connected one.
 */
function parseQuestion(data: unknown, listed: readonly string[] | undefined, limits: QuestionLimits): Omit<QuestionSpec, 'clientIds'> {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw invalid('a question event needs data.question_id')
  const question = data as Record<string, unknown>
  const questionId = question.question_id
  if (!isQuestionId(questionId)) throw invalid(`a question event needs data.question_id: ${QUESTION_ID_RULE}`)
  const schema = question.response_schema === undefined ? null : checkSchema(question.response_schema)
  const hasDefault = 'default_response' in question
  if (hasDefault && schema !== null) {
    const problems = problemsOf(schema, question.default_response)
    if (problems.length > 0) throw invalid(`data.default_response does not satisfy data.response_schema: ${problems.map((p) => `${p.path || '(the response)'} ${p.message}`).join('; ')}`)
  }
  let required: number | null = null
  if (question.required !== undefined) {
    if (listed === undefined) throw invalid('data.required needs the broadcast form with an explicit client_ids list: the approvers')
    if (!Number.isInteger(question.required) || (question.required as number) < 1 || (question.required as number) > listed.length) {
      throw invalid(`data.required must be a whole number from 1 to ${listed.length} (the clients listed)`)
    }
    required = question.required as number
  }
  return { questionId, required, deadline: deadlineOf(question, limits), hasDefault, defaultResponse: question.default_response, schema }
}

/** `data.expires_in_ms` or `data.expires_at`, as epoch ms; null without either. */
function deadlineOf(question: Record<string, unknown>, { now, questionTtlMs }: QuestionLimits): number | null {
  const { expires_in_ms: expiresInMs, expires_at: expiresAt } = question
  if (expiresInMs !== undefined && expiresAt !== undefined) throw invalid('give data.expires_in_ms or data.expires_at, not both')
  if (expiresInMs !== undefined) {
    if (!Number.isInteger(expiresInMs) || (expiresInMs as number) < MIN_DEADLINE_MS || (expiresInMs as number) > questionTtlMs) {
      throw invalid(`data.expires_in_ms must be a whole number from ${MIN_DEADLINE_MS} to ${questionTtlMs} (QUESTION_TTL_MS)`)
    }
    return now + (expiresInMs as number)
  }
  if (expiresAt === undefined) return null
  const at = typeof expiresAt === 'string' && ISO_DATE_TIME.test(expiresAt) ? Date.parse(expiresAt) : Number.NaN
  if (Number.isNaN(at)) throw invalid('data.expires_at must be an ISO-8601 date-time')
  if (at - now < MIN_DEADLINE_MS || at - now > questionTtlMs) {
    throw invalid(`data.expires_at must be at least ${MIN_DEADLINE_MS / 1000} s and at most QUESTION_TTL_MS (${questionTtlMs} ms) ahead`)
  }
  return at
}

/**
 * The `:question_id` of `DELETE …/questions/<question_id>`, percent-decoded once.
 * @example questionIdOfPath('q%2D1') // 'q-1'
 */
export function questionIdOfPath(segment: string): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(segment)
  } catch {
    throw invalid('question_id is not valid percent-encoding')
  }
  if (!isQuestionId(decoded)) throw invalid(`question_id must be ${QUESTION_ID_RULE}`)
  return decoded
}

/**
 * @example parseAnswer({ question_id: 'q1', response: { approved: true } })
 */
export function parseAnswer(body: Record<string, unknown>): AnswerRequest {
  const questionId = body.question_id
  if (!isQuestionId(questionId)) throw invalid(`question_id must be ${QUESTION_ID_RULE}`)
  if (!('response' in body)) throw invalid('response is missing')
  return { questionId, body }
}
