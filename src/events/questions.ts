/**
 * Questions for people and agents (README, "Questions"): what one is, the one state machine
 * every broker implements, and what its transitions answer.
 *
 *   pending ──answer (single) / last approval──► held ──hitl 2xx──► answered
 *      │  ▲                                        │
 *      │  └──────────────── hitl failed ───────────┘
 *      ├──deadline──► expired (its outcome POSTed to hitl, retried)
 *      ├──DELETE────► cancelled
 *      └──QUESTION_TTL_MS without a deadline──► gone (silently)
 *
 * While held, a deadline or a cancellation waits for the forward: it takes effect only if the
 * forward fails, so `hitl` never hears two outcomes of one question. Closed questions are
 * remembered for `QUESTION_TTL_MS`, so a late answer gets 409, not 404.
 */
import type { EventEnvelope } from './envelope'

/** A question as published: who it is pending for, and its rules (README, "Questions"). */
export interface QuestionSpec {
  questionId: string
  /** One client, or the approvers of an approval question. */
  clientIds: readonly string[]
  /** Approvals: answers needed from distinct approvers; null: a question of one client, one answer. */
  required: number | null
  /** Epoch ms of the deadline; null: none (the question leaves silently after `QUESTION_TTL_MS`). */
  deadline: number | null
  /** `data.default_response`, sent with an expiry; undefined: none. */
  defaultResponse: unknown
  hasDefault: boolean
  /** `data.response_schema` (validated at publish); null: any answer. */
  schema: object | null
}

/** One answer, as recorded and as `hitl` receives it. */
export interface RecordedAnswer {
  client_id: string
  /** The token's `sub`; null without authentication. */
  subject: string | null
  response: unknown
  /** ISO-8601 UTC. */
  answered_at: string
}

/** What a client's `GET …/questions` lists of one pending question. */
export interface QuestionView {
  question_id: string
  event_id: string
  data: unknown
  created_at: string
  expires_at: string | null
  required: number | null
  recorded: number | null
}

/** Where a question stands for one client, before an answer is tried (the schema it must pass). */
export type QuestionLookup = { kind: 'pending'; schema: object | null } | { kind: 'unknown' } | { kind: 'closed' } | { kind: 'answered' }

/** The token of a question held while its answer is forwarded. */
export type Hold = string

export type AnswerOutcome =
  /** Never pending for this client, or gone after `QUESTION_TTL_MS`: 404. */
  | { kind: 'unknown' }
  /** Expired or cancelled: 409 `question_closed`. */
  | { kind: 'closed' }
  /** Answered, being answered, or answered by this approver already: 409 `already_answered`. */
  | { kind: 'answered' }
  /** Approvals: recorded, more needed: 202. */
  | { kind: 'recorded'; recorded: number; required: number }
  /** Held for this caller: forward `responses` to `hitl`, then `settle`. */
  | { kind: 'forward'; hold: Hold; approvals: boolean; responses: RecordedAnswer[] }

export type CancelOutcome = 'cancelled' | 'unknown' | 'closed' | 'held'

/** How a question closed, for the audit line and the metrics. */
export type QuestionOutcome = 'answered' | 'expired' | 'cancelled'

export interface QuestionClosure {
  outcome: QuestionOutcome
  questionId: string
  clientIds: readonly string[]
  /** Who answered (token subjects), when authentication is on. */
  subjects: string[]
  openMs: number
}

/** What `hitl` receives when a question's deadline passes (README, "Questions", deadlines). */
export interface ExpiryDelivery {
  /** Idempotency-Key: `<client_id>:<question_id>`, or `approvals/<question_id>`. */
  key: string
  questionId: string
  body: Record<string, unknown>
  /** Epoch ms after which the delivery is given up: `QUESTION_TTL_MS` after the deadline. */
  giveUpAt: number
}

/** Told by a broker what only it knows: questions published and closed (audit, metrics). */
export interface QuestionSink {
  published(): void
  closed(closure: QuestionClosure): void
}

/** The events questions send to their clients' streams. */
export const QUESTION_EVENTS = {
  progress: 'question.progress',
  answered: 'question.answered',
  expired: 'question.expired',
  cancelled: 'question.cancelled',
} as const

/** The body `hitl` receives for an expiry: the default response of a single question, the responses so far of an approval. */
export function expiryBody(questionId: string, clientIds: readonly string[], spec: Pick<QuestionSpec, 'required' | 'hasDefault' | 'defaultResponse'>, recorded: readonly RecordedAnswer[]): Record<string, unknown> {
  if (spec.required !== null) return { question_id: questionId, status: 'expired', responses: recorded }
  return { question_id: questionId, client_id: clientIds[0], status: 'expired', ...(spec.hasDefault ? { response: spec.defaultResponse } : {}) }
}

/** The Idempotency-Key of a question's outcome (README, "Answer"). */
export function outcomeKey(questionId: string, clientIds: readonly string[], required: number | null): string {
  return required === null ? `${clientIds[0]}:${questionId}` : `approvals/${questionId}`
}

/** A question's view for one client (`GET …/questions`). */
export function questionView(envelope: EventEnvelope, createdAt: number, deadline: number | null, required: number | null, recorded: number): QuestionView {
  return {
    question_id: (envelope.data as { question_id: string }).question_id,
    event_id: envelope.id,
    data: envelope.data,
    created_at: new Date(createdAt).toISOString(),
    expires_at: deadline === null ? null : new Date(deadline).toISOString(),
    required,
    recorded: required === null ? null : recorded,
  }
}
