/**
 * Forwarding a person's answer to the `hitl` service (SPEC §6): the body plus `client_id`, with
 * `Idempotency-Key: <client_id>:<question_id>` so the service can dedupe retries.
 */
import type { ServiceTarget } from '../config'
import { GatewayError } from '../http/errors'
import { ForwardFailure, forward } from '../proxy/forward'

export interface AnswerDelivery {
  hitl: ServiceTarget
  /** `HITL_RESPONSE_PATH`, `{question_id}` substituted here. */
  responsePath: string
  clientId: string
  questionId: string
  body: Record<string, unknown>
  requestId: string
  timeoutMs: number
}

/**
 * POSTs the answer and resolves with the service's response (any status).
 * @throws GatewayError 502 when the service cannot be reached, 504 when it does not answer in time.
 */
export async function deliverAnswer(delivery: AnswerDelivery): Promise<Response> {
  const path = delivery.responsePath.replaceAll('{question_id}', encodeURIComponent(delivery.questionId))
  try {
    // No client signal: once forwarded, an answer completes even if the person closes the tab.
    return await forward({
      url: delivery.hitl.origin + delivery.hitl.basePath + path,
      method: 'POST',
      headers: new Headers({
        'content-type': 'application/json',
        'idempotency-key': `${delivery.clientId}:${delivery.questionId}`,
        'x-request-id': delivery.requestId,
      }),
      body: JSON.stringify({ ...delivery.body, client_id: delivery.clientId }),
      hasContentLength: true,
      maxBodyBytes: Number.MAX_SAFE_INTEGER,
      timeoutMs: delivery.timeoutMs,
    })
  } catch (error) {
    if (error instanceof ForwardFailure && error.kind === 'timeout') {
      throw new GatewayError('gateway_timeout', `hitl service: ${error.message}`)
    }
    throw new GatewayError('bad_gateway', `hitl service: ${(error as Error).message}`)
  }
}
