/** The gateway's own errors (README, "Error format"): a code, a status, and one JSON shape for all of them. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  unknown_service: 404,
  unknown_question: 404,
  already_answered: 409,
  question_closed: 409,
  payload_too_large: 413,
  invalid_answer: 422,
  rate_limited: 429,
  too_many_streams: 429,
  bad_gateway: 502,
  service_unavailable: 503,
  gateway_timeout: 504,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

/** An error that is meant for the client: thrown anywhere, mapped to JSON in one place. */
export class GatewayError extends Error {
  /**
   * @param details what exactly was wrong, for errors that say (`invalid_answer`: the answer's problems).
   */
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details?: unknown,
  ) {
    super(message)
  }

  get status(): number {
    return ERROR_STATUS[this.code]
  }
}

/**
 * The JSON response for an error the gateway produces itself.
 * @example errorResponse('unknown_service', 'no service "x"', 'req-1').status // 404
 */
export function errorResponse(code: ErrorCode, message: string, requestId: string, headers: Record<string, string> = {}, details?: unknown): Response {
  return new Response(JSON.stringify(details === undefined ? { error: code, message, request_id: requestId } : { error: code, message, request_id: requestId, details }), {
    status: ERROR_STATUS[code],
    headers: { 'content-type': 'application/json', ...headers },
  })
}
