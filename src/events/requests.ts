/**
 * Validation of what publishers and answering people send (README, "Publish" and "Answer"). Each function turns an
 * untrusted JSON object into a typed request or throws a `bad_request` naming the field.
 */
import { GatewayError } from '../http/errors'
import { IDENTIFIER_PATTERN } from '../http/request-id'
import { EVENT_TYPE_PATTERN, QUESTION_EVENT_TYPE, RESERVED_EVENT_TYPES } from './envelope'

export interface PublishRequest {
  eventType: string
  data: unknown
  /** The publisher's own id (idempotent retries), if any. */
  id?: string
  /** Broadcast form only: absent means every connected client. */
  clientIds?: string[]
}

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
export function parsePublish(body: Record<string, unknown>, broadcast: boolean): PublishRequest {
  const { event_type: eventType, data = null, id, client_ids: clientIds } = body
  if (typeof eventType !== 'string' || !EVENT_TYPE_PATTERN.test(eventType)) {
    throw invalid('event_type must be 1-64 characters of [A-Za-z0-9._:-]')
  }
  if (RESERVED_EVENT_TYPES.has(eventType)) throw invalid(`event_type ${eventType} is reserved by the gateway`)
  if (id !== undefined && (typeof id !== 'string' || !IDENTIFIER_PATTERN.test(id))) {
    throw invalid('id must be 1-128 characters of [A-Za-z0-9._:-]')
  }
  if (eventType === QUESTION_EVENT_TYPE) validateQuestion(data)
  const request: PublishRequest = { eventType, data, id: id as string | undefined }
  if (broadcast && clientIds !== undefined) {
    if (!Array.isArray(clientIds) || !clientIds.every((c) => typeof c === 'string' && IDENTIFIER_PATTERN.test(c))) {
      throw invalid('client_ids must be an array of client ids (1-128 characters of [A-Za-z0-9._:-])')
    }
    request.clientIds = [...new Set(clientIds as string[])]
  }
  return request
}

function validateQuestion(data: unknown): void {
  const question = data as { question_id?: unknown; expires_at?: unknown } | null
  if (question === null || typeof question !== 'object' || Array.isArray(question)) {
    throw invalid('a question event needs data.question_id')
  }
  const { question_id: questionId, expires_at: expiresAt } = question
  if (!isQuestionId(questionId)) throw invalid(`a question event needs data.question_id: ${QUESTION_ID_RULE}`)
  if (expiresAt !== undefined && (typeof expiresAt !== 'string' || Number.isNaN(Date.parse(expiresAt)))) {
    throw invalid('data.expires_at must be an ISO-8601 date-time')
  }
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
