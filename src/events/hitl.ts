/**
 * Forwarding a person's answer to the `hitl` service (README, "Answer"): the body plus
 * `client_id`, with `Idempotency-Key: <client_id>:<question_id>` so the service can dedupe
 * retries. It goes through the upstream module like any proxied request.
 */
import { AUTH_SUBJECT_HEADER } from '../proxy/headers'
import type { Upstream } from '../upstream/upstream'

export interface AnswerDelivery {
  /** `HITL_RESPONSE_PATH`, `{question_id}` substituted here. */
  responsePath: string
  clientId: string
  questionId: string
  body: Record<string, unknown>
  requestId: string
  /** The answering person's `sub`, when authentication is on. */
  subject?: string
}

/**
 * POSTs the answer and resolves with the service's response (any status). No client signal:
 * once forwarded, an answer completes even if the person closes the tab.
 * @throws UpstreamFailure when the service cannot be reached or does not answer in time.
 */
export function forwardAnswer(hitl: Upstream, delivery: AnswerDelivery): Promise<Response> {
  const headers = new Headers({
    'content-type': 'application/json',
    'idempotency-key': `${delivery.clientId}:${delivery.questionId}`,
    'x-request-id': delivery.requestId,
  })
  if (delivery.subject !== undefined) headers.set(AUTH_SUBJECT_HEADER, delivery.subject)
  return hitl.call({
    method: 'POST',
    target: delivery.responsePath.replaceAll('{question_id}', encodeURIComponent(delivery.questionId)),
    headers,
    body: JSON.stringify({ ...delivery.body, client_id: delivery.clientId }),
    declaredLength: null,
  })
}
