/**
 * The one way to call a backend (README, "Design notes"): the proxy and the forwarding of HITL
 * answers both go through `Upstream.call`, which chooses the target, forwards with Bun's `fetch`
 * (keep-alive pooled, no decompression, no redirects followed) under the header deadline, drops
 * the hop-by-hop headers of the response, and classifies what went wrong (`failures.ts`).
 */
import type { Config, ServiceTarget } from '../config'
import type { Metrics } from '../ops/metrics'
import { dropHopByHop } from '../http/hop-by-hop'
import { BodyLimit } from './body-limit'
import { DeadlineQueue } from './deadlines'
import { Exchange } from './exchange'
import { type FailureKind, FAILURES, UpstreamFailure, failureKindOf } from './failures'

/** How long an exchange waits for headers before its client's departure is watched (see deadlines.ts). */
export const WATCH_CLIENT_AFTER_MS = 100

export interface UpstreamRequest {
  method: string
  /**
   * The path after the service's base path, and the query, as received: `/jobs?x=1`. It may be
   * empty or start with `?` (the base path itself).
   */
  target: string
  headers: Headers
  body: ReadableStream<Uint8Array> | string | null
  /** The declared body length; null makes the gateway count a streamed body against `MAX_BODY_BYTES`. */
  declaredLength: number | null
  /** The client's request: its departure aborts the exchange. Absent for the gateway's own calls. */
  client?: Request
}

/** Options of Bun's `fetch` that bun-types does not declare. */
interface BunFetchExtensions {
  /** `false`: hand the body through exactly as the backend encoded it. */
  decompress?: boolean
}

/** What every upstream shares: the deadline queue, the limits and the metrics. */
interface Shared {
  deadlines: DeadlineQueue
  timeoutMs: number
  maxBodyBytes: number
  metrics: Metrics
}

/** One backend service. */
export class Upstream {
  constructor(
    private readonly instance: ServiceTarget,
    private readonly shared: Shared,
  ) {}

  get name(): string {
    return this.instance.name
  }

  /** The service's URL as configured (`target_url` in the log). */
  get url(): string {
    return this.instance.url
  }

  /** The instance for the next exchange; a service has exactly one today. */
  pick(): ServiceTarget {
    return this.instance
  }

  /**
   * The path on the backend for a path after the service prefix.
   * @example upstream.pathOn('/jobs') // '/base/jobs' for http://h:9000/base; pathOn('') → '/base' (or '/')
   */
  pathOn(path: string): string {
    return this.instance.basePath + path || '/'
  }

  /**
   * Sends the request and resolves with the backend's response, its body still streaming.
   * @example await upstreams.get('hitl')!.call({ method: 'POST', target: '/responses', headers, body, declaredLength: null })
   * @throws UpstreamFailure with the kind of failure.
   */
  async call(request: UpstreamRequest): Promise<Response> {
    const target = this.pick()
    const { deadlines } = this.shared
    const exchange = new Exchange(request.client)
    let body = request.body
    let limit: BodyLimit | undefined
    if (body instanceof ReadableStream && request.declaredLength === null) {
      limit = new BodyLimit(this.shared.maxBodyBytes)
      body = limit.apply(body)
    }
    deadlines.add(exchange)
    try {
      const init: RequestInit & BunFetchExtensions = {
        method: request.method,
        headers: request.headers,
        body,
        signal: exchange.controller.signal,
        redirect: 'manual',
        decompress: false,
      }
      // `http://h:9000` + `` + `?x` is fetched as `http://h:9000/?x`: the URL parser supplies the `/`.
      const response = await fetch(target.origin + target.basePath + request.target, init)
      // In place: the response is handed on as it is, without a copy (`Set-Cookie` stays apart).
      dropHopByHop(response.headers)
      return response
    } catch (error) {
      throw this.failure(exchange.abortedFor ?? (limit?.exceeded ? 'too_large' : failureKindOf(error)), error)
    } finally {
      deadlines.remove(exchange)
    }
  }

  private failure(kind: FailureKind, cause: unknown): UpstreamFailure {
    if (FAILURES[kind].backendFault) this.shared.metrics.upstreamErrors.inc({ service: this.name, kind })
    return new UpstreamFailure(kind, this.name, failureMessage(kind, cause, this.shared))
  }
}

function failureMessage(kind: FailureKind, cause: unknown, limits: { timeoutMs: number; maxBodyBytes: number }): string {
  const code = (cause as { code?: string } | null)?.code
  switch (kind) {
    case 'connect':
      return `cannot connect to the backend (${code})`
    case 'tls':
      return `the backend's TLS certificate was not accepted (${code}); a private CA is trusted with NODE_EXTRA_CA_CERTS`
    case 'reset':
      return `the backend closed the connection (${code || (cause as Error)?.message || String(cause)})`
    case 'timeout':
      return `no response headers within ${limits.timeoutMs} ms`
    case 'too_large':
      return `request body larger than ${limits.maxBodyBytes} bytes`
    case 'client_gone':
      return 'the client disconnected'
  }
}

/** Every configured service as an `Upstream`, sharing one deadline queue. */
export class Upstreams {
  private readonly byName = new Map<string, Upstream>()
  private readonly deadlines: DeadlineQueue

  constructor(config: Pick<Config, 'services' | 'upstreamTimeoutMs' | 'maxBodyBytes'>, metrics: Metrics) {
    this.deadlines = new DeadlineQueue(config.upstreamTimeoutMs, WATCH_CLIENT_AFTER_MS)
    const shared: Shared = { deadlines: this.deadlines, timeoutMs: config.upstreamTimeoutMs, maxBodyBytes: config.maxBodyBytes, metrics }
    for (const [name, target] of config.services) this.byName.set(name, new Upstream(target, shared))
  }

  /** The service registered under `name` (as it appears in the URL), if any. */
  get(name: string): Upstream | undefined {
    return this.byName.get(name)
  }

  /** Exchanges waiting for response headers right now. */
  get waiting(): number {
    return this.deadlines.length
  }

  close(): void {
    this.deadlines.close()
  }
}
