/**
 * What the `hitl` service receives (README, "Answer" and "Questions"): an answer (the body,
 * with the fields the gateway owns set by it), or a question's expiry; each with its
 * `Idempotency-Key`, so the service can dedupe a retry. Both go through the upstream module
 * like any proxied request.
 */
import { AUTH_SUBJECT_HEADER } from '../proxy/headers'
import type { Upstream } from '../upstream/upstream'
import type { ExpiryDelivery } from './questions'

export interface AnswerDelivery {
  /** `HITL_RESPONSE_PATH`, `{question_id}` substituted here. */
  responsePath: string
  questionId: string
  /** The body `hitl` receives, the gateway's own fields already set. */
  body: Record<string, unknown>
  /** `<client_id>:<question_id>`, or `approvals/<question_id>`. */
  idempotencyKey: string
  requestId: string
  /** The answering person's `sub`, when authentication is on. */
  subject?: string
}

/** The path on `hitl` of a question's outcome. */
export function responsePathOf(template: string, questionId: string): string {
  return template.replaceAll('{question_id}', encodeURIComponent(questionId))
}

/**
 * POSTs the answer and resolves with the service's response (any status). No client signal:
 * once forwarded, an answer completes even if the person closes the tab.
 * @throws UpstreamFailure when the service cannot be reached or does not answer in time.
 */
export function forwardAnswer(hitl: Upstream, delivery: AnswerDelivery): Promise<Response> {
  const headers = new Headers({ 'content-type': 'application/json', 'idempotency-key': delivery.idempotencyKey, 'x-request-id': delivery.requestId })
  if (delivery.subject !== undefined) headers.set(AUTH_SUBJECT_HEADER, delivery.subject)
  return hitl.call({
    method: 'POST',
    target: responsePathOf(delivery.responsePath, delivery.questionId),
    headers,
    body: JSON.stringify(delivery.body),
    declaredLength: null,
  })
}

/** How one attempt to tell `hitl` of an expiry went: `retry` while it is unreachable or answers 5xx. */
export type DeliveryAttempt = 'delivered' | 'retry' | 'refused'

/**
 * One attempt to POST an expiry to `hitl` (README, "Questions", deadlines).
 * @example await deliverExpiry(hitl, '/responses', delivery) // 'delivered'
 */
export async function deliverExpiry(hitl: Upstream, responsePath: string, delivery: ExpiryDelivery): Promise<DeliveryAttempt> {
  try {
    const response = await hitl.call({
      method: 'POST',
      target: responsePathOf(responsePath, delivery.questionId),
      headers: new Headers({ 'content-type': 'application/json', 'idempotency-key': delivery.key }),
      body: JSON.stringify(delivery.body),
      declaredLength: null,
    })
    // The status decides; the body is not read, so one that stalls cannot hold a delivery slot.
    void response.body?.cancel().catch(() => {})
    if (response.status >= 500) return 'retry'
    return response.status < 300 ? 'delivered' : 'refused'
  } catch {
    return 'retry'
  }
}

/** The wait before attempt `attempt + 1` of a delivery: 1 s, doubling up to 60 s. */
export function retryDelayMs(attempt: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, attempt - 1), 60_000)
}
