/**
 * Phase 3 of the proxy: one exchange with the backend through Bun's `fetch` (keep-alive pooled),
 * streaming the request body, bounded by `UPSTREAM_TIMEOUT_MS` until the response headers, and
 * aborted when the client goes away. Failures come back as values with a kind, mapped to a
 * status in one place (`failureStatus`).
 */
import type { UpstreamErrorKind } from '../ops/metrics'

export type ForwardFailureKind = UpstreamErrorKind | 'too_large' | 'client_gone'

export class ForwardFailure extends Error {
  constructor(
    readonly kind: ForwardFailureKind,
    message: string,
  ) {
    super(message)
  }
}

export interface ForwardOptions {
  url: string
  method: string
  headers: Headers
  /** The client's body stream (or the gateway's own body), or null. */
  body: ReadableStream<Uint8Array> | string | null
  /** Whether the client declared `Content-Length` (then the HTTP parser already bounds the body). */
  hasContentLength: boolean
  maxBodyBytes: number
  timeoutMs: number
  /** The client's request signal: aborted when the client disconnects. */
  clientSignal?: AbortSignal
}

/** Options of Bun's `fetch` that bun-types does not declare. */
interface BunFetchExtensions {
  /** `false`: hand the body through exactly as the backend encoded it (SPEC §4). */
  decompress?: boolean
}

/** Bun's error codes for a backend that could not be reached at all. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ConnectionRefused', 'FailedToOpenSocket', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'DNSException', 'UnableToConnect'])

/**
 * Sends the request upstream and resolves with the backend's response (body still streaming).
 * @throws ForwardFailure with the kind of failure.
 */
export async function forward(options: ForwardOptions): Promise<Response> {
  const controller = new AbortController()
  // Failures are made only when they happen: an Error per request would cost a stack trace each.
  const timer = setTimeout(() => controller.abort(new ForwardFailure('timeout', `no response headers within ${options.timeoutMs} ms`)), options.timeoutMs)
  const onClientAbort = () => controller.abort(new ForwardFailure('client_gone', 'the client disconnected'))
  if (options.clientSignal?.aborted) onClientAbort()
  else options.clientSignal?.addEventListener('abort', onClientAbort, { once: true })

  let body = options.body
  let limitExceeded = false
  if (body instanceof ReadableStream && !options.hasContentLength) {
    body = body.pipeThrough(byteLimit(options.maxBodyBytes, () => (limitExceeded = true)))
  }

  try {
    const init: RequestInit & BunFetchExtensions = {
      method: options.method,
      headers: options.headers,
      body,
      signal: controller.signal,
      redirect: 'manual',
      decompress: false,
    }
    return await fetch(options.url, init)
  } catch (error) {
    if (limitExceeded) throw new ForwardFailure('too_large', `request body larger than ${options.maxBodyBytes} bytes`)
    throw classify(error)
  } finally {
    clearTimeout(timer)
  }
}

function classify(error: unknown): ForwardFailure {
  // Our own abort reasons (timeout, client gone) arrive as the rejection itself.
  if (error instanceof ForwardFailure) return error
  const code = (error as { code?: string }).code ?? ''
  const message = (error as Error).message ?? String(error)
  if (CONNECT_CODES.has(code)) return new ForwardFailure('connect', `cannot connect to the backend (${code})`)
  return new ForwardFailure('reset', `the backend closed the connection (${code || message})`)
}

/** Errors the stream once more than `limit` bytes have passed, for bodies without `Content-Length`. */
function byteLimit(limit: number, onExceeded: () => void): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength
      if (seen <= limit) return controller.enqueue(chunk)
      onExceeded()
      controller.error(new Error('request body too large'))
    },
  })
}
