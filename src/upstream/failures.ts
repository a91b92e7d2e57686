/**
 * How an exchange with a backend can fail, and what each failure means for the client, in one
 * table (README, "Failures"). Failures are thrown as `UpstreamFailure`s with a kind; the pipeline
 * turns them into the JSON error of their row.
 */
import { type ErrorCode, GatewayError } from '../http/errors'

export type FailureKind = 'connect' | 'tls' | 'reset' | 'timeout' | 'too_large' | 'client_gone' | 'ejected' | 'refused'

interface FailureRow {
  /** The error the client gets. */
  error: ErrorCode
  /** The backend is at fault: counted in `gateway_upstream_errors_total`. */
  backendFault: boolean
  /** The status the access log and the metrics record, when it differs from the error's. */
  loggedStatus?: number
}

export const FAILURES: Readonly<Record<FailureKind, FailureRow>> = {
  /** No connection could be made: refused, unreachable, DNS. */
  connect: { error: 'bad_gateway', backendFault: true },
  /** An https:// backend whose certificate did not verify (expired, wrong name, unknown CA). */
  tls: { error: 'bad_gateway', backendFault: true },
  /** The backend closed or reset the connection before its response headers. */
  reset: { error: 'bad_gateway', backendFault: true },
  /** No response headers within `UPSTREAM_TIMEOUT_MS`. */
  timeout: { error: 'gateway_timeout', backendFault: true },
  /** A body without `Content-Length` grew past `MAX_BODY_BYTES` while it streamed. */
  too_large: { error: 'payload_too_large', backendFault: false },
  /** The client went away first; nginx's 499 "client closed request" in logs and metrics. */
  client_gone: { error: 'bad_gateway', backendFault: false, loggedStatus: 499 },
  /** A WebSocket upgrade the backend answered with something else than 101, or without an offered subprotocol. */
  refused: { error: 'bad_gateway', backendFault: false },
  /** Every instance of the service is ejected (README, "Instances"): answered at once, no backend touched. */
  ejected: { error: 'service_unavailable', backendFault: false },
}

/** Whether the kind means the instance failed, for passive health. */
export const INSTANCE_FAULTS: ReadonlySet<FailureKind> = new Set(['connect', 'tls', 'reset', 'timeout'])

/** A failed exchange with the backend of `service`. */
export class UpstreamFailure extends Error {
  /**
   * @param retryAfterSeconds for `ejected`: when the next probe is due (`Retry-After`).
   */
  constructor(
    readonly kind: FailureKind,
    readonly service: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message)
  }

  /** The client's answer, from the row of this kind. */
  toGatewayError(): GatewayError {
    const headers: Record<string, string> = this.retryAfterSeconds === undefined ? {} : { 'retry-after': String(this.retryAfterSeconds) }
    return new GatewayError(FAILURES[this.kind].error, `${this.service}: ${this.message}`, headers)
  }
}

/** Bun's error codes for a backend that could not be reached at all. */
const CONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ConnectionRefused',
  'FailedToOpenSocket',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'DNSException',
  'UnableToConnect',
])

/** BoringSSL's and Node's names for a certificate that did not verify: `DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, ... */
const TLS_CODE = /CERT|TLS|SSL|ALTNAME|HOSTNAME_MISMATCH/

/**
 * The kind of a rejection from Bun's `fetch` that the gateway did not cause itself.
 * @example failureKindOf({ code: 'ECONNREFUSED' }) // 'connect'
 */
export function failureKindOf(error: unknown): 'connect' | 'tls' | 'reset' {
  const code = (error as { code?: string } | null)?.code ?? ''
  return CONNECT_CODES.has(code) ? 'connect' : TLS_CODE.test(code) ? 'tls' : 'reset'
}
