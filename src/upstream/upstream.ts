/**
 * The one way to call a backend (README, "Design notes" and "Instances"): the proxy and the
 * forwarding of HITL answers both go through `Upstream.call`, which picks an instance (least
 * requests in flight of two random healthy ones), forwards with Bun's `fetch` (keep-alive
 * pooled, no decompression, no redirects followed) under the header deadline, drops the
 * hop-by-hop headers of the response, classifies what went wrong (`failures.ts`), feeds passive
 * health, and retries on another instance a request that reached no backend.
 */
import { type HeaderRules, type PolicySet, type ServicePolicy, policiesOfEnvironment } from '../config/policies'
import type { Config, InstanceTarget } from '../config/settings'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { applyHeaderRules } from '../http/header-rules'
import { dropHopByHop } from '../http/hop-by-hop'
import { pickLeastLoaded } from './balancer'
import { BodyLimit } from './body-limit'
import { DeadlineQueues } from './deadlines'
import { Exchange } from './exchange'
import { type FailureKind, FAILURES, INSTANCE_FAULTS, UpstreamFailure, failureKindOf } from './failures'
import { Instance } from './instance'
import { PassiveHealth } from './passive-health'

/** How long an exchange waits for headers before its client's departure is watched (see deadlines.ts). */
export const WATCH_CLIENT_AFTER_MS = 100
/** A request body up to this size is kept, so the request can be sent again to another instance. */
export const REPLAYABLE_BODY_BYTES = 64 * 1024
/**
 * A response body declared this small has, in practice, arrived with its headers (one or two
 * TCP segments): it is counted as ended then, and handed on without a stream around it.
 * Passing every body through a counting stream cost 40% of the throughput (BENCHMARKS.md).
 */
const ENDS_WITH_HEADERS_BYTES = 16 * 1024
/** RFC 9110 §9.2.2: methods whose repetition is harmless, retried even after the backend saw them. */
const RETRIED_AFTER_RESET: ReadonlySet<string> = new Set(['GET', 'HEAD'])

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
  /** Told which instance answered and after how many attempts (for the access log). */
  record?: CallRecord
  /** The route's limits (README, "Policies"); absent: the service's own. */
  limits?: CallLimits
  /** The route's rules for the backend's response headers, applied as the response arrives. */
  responseHeaders?: HeaderRules | null
}

/** What a route's policy sets for one call: the wait for headers, the retries, the body size. */
export interface CallLimits {
  timeoutMs: number
  retries: number
  maxBodyBytes: number
}

/** A WebSocket to open on the backend (README, "WebSocket proxying"). */
export interface UpstreamWebSocketRequest {
  /** As for `UpstreamRequest`: the path after the service's base path, and the query. */
  target: string
  /** End-to-end headers, forwarding headers included; no `Sec-WebSocket-*` of the client's. */
  headers: Headers
  /** The subprotocols the client offered, in its order. */
  protocols: string[]
  /** The client's request: if it goes away while the backend is being reached, the attempt stops. */
  client: Request
  record?: CallRecord
  limits?: CallLimits
}

/** A backend WebSocket that is open, and what must be done once its session ends. */
export interface OpenedWebSocket {
  socket: WebSocket
  /** The session has ended: the instance has one request fewer in flight. */
  release(): void
}

/** Bun's client `WebSocket` takes headers too (and the subprotocols then as an option). */
type BunWebSocketConstructor = new (url: string, options: { headers: Headers; protocols: string[] }) => WebSocket

/** What a caller learns of a call besides its response. */
export interface CallRecord {
  attempts: number
  instance: InstanceTarget | undefined
}

/** A request body as sent: the client's stream, or text or bytes that can be sent again. */
type OutgoingBody = ReadableStream<Uint8Array> | string | ArrayBuffer | null

/** Options of Bun's `fetch` that bun-types does not declare. */
interface BunFetchExtensions {
  /** `false`: hand the body through exactly as the backend encoded it. */
  decompress?: boolean
}

/** What every upstream shares: the header deadlines and the metrics. */
interface Shared {
  deadlines: DeadlineQueues
  metrics: Metrics
}

/** One backend service and its instances. */
export class Upstream {
  /** Several instances: requests are balanced and counted in flight until their body ends. */
  private readonly balanced: boolean
  /** The service's own limits: calls that bring none (the HITL answers) use these. */
  private readonly limits: CallLimits

  /**
   * @param instances the service's instances, kept by the registry across reloads (their health and in-flight counts with them).
   */
  constructor(
    private readonly service: ServicePolicy,
    private readonly instances: readonly Instance[],
    private readonly health: PassiveHealth,
    private readonly shared: Shared,
  ) {
    this.balanced = instances.length > 1
    const { timeoutMs, retries, maxBodyBytes } = service.policy
    this.limits = { timeoutMs, retries, maxBodyBytes }
  }

  get name(): string {
    return this.service.name
  }

  /** The longest one call with the service's own limits may take: every attempt timing out. */
  get longestCallMs(): number {
    return this.limits.timeoutMs * (this.limits.retries + 1)
  }

  /**
   * Sends the request and resolves with the backend's response, its body still streaming.
   * Not an `async` function: a single instance's call adds no promise of its own to the exchange.
   * @example await upstreams.get('hitl')!.call({ method: 'POST', target: '/responses', headers, body, declaredLength: null })
   * @throws UpstreamFailure with the kind of failure (`ejected` while no instance may be used).
   */
  call(request: UpstreamRequest): Promise<Response> {
    return this.balanced ? this.callBalanced(request) : this.callOnly(request)
  }

  /**
   * A service of one instance: one attempt, nothing to balance or retry on, and no promise or
   * closure beyond the exchange's own (the generic attempt loop cost about 2% of the proxy's
   * throughput here, BENCHMARKS.md). Passive health judges it as any attempt.
   */
  private callOnly(request: UpstreamRequest): Promise<Response> {
    const health = this.health
    const only = this.instances[0]!
    const now = performance.now()
    const admitted = health.admit(only, now)
    if (admitted === 'no') return Promise.reject(this.unavailable(now))
    const probe = admitted === 'probe'
    if (request.record !== undefined) {
      request.record.attempts = 1
      request.record.instance = only.target
    }
    return this.send(only, request, request.body, request.limits ?? this.limits).then(
      (response) => {
        health.answered(only, response.status, probe)
        return response
      },
      (failure: UpstreamFailure) => {
        this.judge(only, probe, failure.kind)
        throw failure
      },
    )
  }

  /** Several instances: balanced, counted in flight until the body ends, and retried where the retry rule allows (README, "Instances"). */
  private async callBalanced(request: UpstreamRequest): Promise<Response> {
    const health = this.health
    const limits = request.limits ?? this.limits
    let body: OutgoingBody = request.body
    // Sending again needs the body again: a small declared one is read first; a streamed one is never retried.
    const mayRetry = limits.retries > 0
    if (mayRetry && body instanceof ReadableStream && request.declaredLength !== null && request.declaredLength <= REPLAYABLE_BODY_BYTES) {
      try {
        body = await new Response(body).arrayBuffer()
      } catch {
        throw new UpstreamFailure('client_gone', this.name, failureMessage('client_gone', null, limits))
      }
    }
    const replayable = !(body instanceof ReadableStream)
    const retried = (kind: FailureKind, attempt: number) => mayRetry && replayable && attempt <= limits.retries && isRetried(kind, request.method)
    return this.attempts(request.record, retried, async (instance, probe) => {
      const response = await this.send(instance, request, body, limits)
      health.answered(instance, response.status, probe)
      return this.countedUntilEnd(instance, response, request.client)
    })
  }

  /**
   * Attempts on one instance after another: each chosen by balance and health, counted in flight
   * (the successful `once` takes the count over), judged by passive health when it fails, and
   * followed by another only when `retried` says so and an instance is left.
   */
  private async attempts<T>(record: CallRecord | undefined, retried: (kind: FailureKind, attempt: number) => boolean, once: (instance: Instance, probe: boolean) => Promise<T>): Promise<T> {
    let tried: Instance[] | undefined
    let failure: UpstreamFailure | undefined
    for (let attempt = 1; ; attempt++) {
      const now = performance.now()
      const chosen = this.choose(tried, now)
      // Nothing left to try: a first attempt is told why (all ejected), a retry keeps its failure.
      if (chosen === undefined) throw failure ?? this.unavailable(now)
      const { instance, probe } = chosen
      if (failure !== undefined) this.shared.metrics.upstreamRetries.inc({ service: this.name, reason: failure.kind })
      if (record !== undefined) {
        record.attempts = attempt
        record.instance = instance.target
      }
      instance.inFlight++
      try {
        return await once(instance, probe)
      } catch (error) {
        instance.inFlight--
        failure = error as UpstreamFailure
      }
      this.judge(instance, probe, failure.kind)
      if (!retried(failure.kind, attempt)) throw failure
      ;(tried ??= []).push(instance)
    }
  }

  /** Passive health's verdict on a failed attempt: the instance's fault, or none (its probe is let go). */
  private judge(instance: Instance, probe: boolean, kind: FailureKind): void {
    if (INSTANCE_FAULTS.has(kind)) this.health.failed(instance, probe)
    else if (probe) this.health.release(instance)
  }

  /**
   * Opens a WebSocket on an instance: balanced and ejection-aware like `call`, and tried on
   * another instance when the socket could not be opened at all. Resolves once the backend
   * accepted the upgrade with one of the offered subprotocols (when any was offered).
   * @throws UpstreamFailure `refused` (a status other than 101, or no subprotocol chosen),
   *   `connect`/`tls`, `timeout`, `client_gone` or `ejected`.
   */
  async openWebSocket(request: UpstreamWebSocketRequest): Promise<OpenedWebSocket> {
    const limits = request.limits ?? this.limits
    // Only a socket that could not be opened at all is tried elsewhere: nothing reached a backend.
    const retried = (kind: FailureKind, attempt: number) => attempt <= limits.retries && (kind === 'connect' || kind === 'tls')
    return this.attempts(request.record, retried, async (instance, probe) => {
      const socket = await this.connectWebSocket(instance, probe, request, limits)
      this.health.succeeded(instance)
      let released = false
      return {
        socket,
        release: () => {
          if (!released) (released = true), instance.inFlight--
        },
      }
    })
  }

  /** One attempt: the backend's answer to the upgrade, within `UPSTREAM_TIMEOUT_MS`. */
  private connectWebSocket(instance: Instance, probe: boolean, request: UpstreamWebSocketRequest, limits: CallLimits): Promise<WebSocket> {
    const { origin, basePath } = instance.target
    // http://h:9000 → ws://h:9000, https:// → wss://; as with fetch, the URL parser supplies a missing `/`.
    const url = `ws${origin.slice(4)}${basePath}${request.target}`
    const socket = new (WebSocket as unknown as BunWebSocketConstructor)(url, { headers: request.headers, protocols: request.protocols })
    socket.binaryType = 'arraybuffer'
    return new Promise<WebSocket>((resolve, reject) => {
      const fail = (kind: FailureKind, message: string) => {
        settle()
        socket.close()
        if (FAILURES[kind].backendFault) this.shared.metrics.upstreamErrors.inc({ service: this.name, kind })
        reject(new UpstreamFailure(kind, this.name, message))
      }
      const timer = setTimeout(() => fail('timeout', `no answer to the WebSocket upgrade within ${limits.timeoutMs} ms`), limits.timeoutMs)
      const onClientGone = () => fail('client_gone', failureMessage('client_gone', null, limits))
      request.client.signal.addEventListener('abort', onClientGone, { once: true })
      const settle = () => {
        clearTimeout(timer)
        request.client.signal.removeEventListener('abort', onClientGone)
        socket.onopen = socket.onerror = socket.onclose = null
      }
      socket.onopen = () => {
        if (request.protocols.length > 0 && !request.protocols.includes(socket.protocol)) {
          fail('refused', 'the backend accepted the WebSocket upgrade without choosing an offered subprotocol')
          return
        }
        settle()
        resolve(socket)
      }
      socket.onerror = (event) => {
        const error = (event as ErrorEvent).error as { code?: string; message?: string } | undefined
        const message = (event as ErrorEvent).message ?? error?.message ?? ''
        // Bun reports an HTTP answer other than 101 as "Expected 101 status code: <status>".
        const status = /Expected 101 status code: (\d{3})/.exec(message)?.[1]
        if (status !== undefined) {
          this.health.answered(instance, Number(status), probe)
          fail('refused', `the backend refused the WebSocket upgrade with status ${status}`)
          return
        }
        const kind = failureKindOf(error)
        fail(kind, failureMessage(kind, error, limits))
      }
      socket.onclose = () => fail('reset', failureMessage('reset', { message: 'closed before the upgrade completed' }, limits))
    })
  }

  /** An instance for the next attempt, not yet tried for this request (and whether it is a probe); undefined when none may be used. */
  private choose(tried: Instance[] | undefined, now: number): { instance: Instance; probe: boolean } | undefined {
    const health = this.health
    let pick: Instance | undefined
    if (!this.balanced) pick = this.instances[0]!
    else {
      let due: Instance | undefined
      const healthy: Instance[] = []
      for (const instance of this.instances) {
        if (tried?.includes(instance)) continue
        if (!instance.ejected) healthy.push(instance)
        else if (due === undefined && !instance.probing && now >= instance.ejectedUntil) due = instance
      }
      // A cooled-down instance takes the next request as its probe, so it is back as soon as it works.
      pick = due ?? pickLeastLoaded(healthy)
    }
    if (pick === undefined || tried?.includes(pick)) return undefined
    const admitted = health.admit(pick, now)
    return admitted === 'no' ? undefined : { instance: pick, probe: admitted === 'probe' }
  }

  /** One attempt on one instance. */
  private async send(instance: Instance, request: UpstreamRequest, body: OutgoingBody, limits: CallLimits): Promise<Response> {
    const deadlines = this.shared.deadlines.forTimeout(limits.timeoutMs)
    const exchange = new Exchange(request.client)
    let limit: BodyLimit | undefined
    if (body instanceof ReadableStream && request.declaredLength === null) {
      limit = new BodyLimit(limits.maxBodyBytes)
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
      const target = instance.target
      const response = await fetch(target.origin + target.basePath + request.target, init)
      // In place: the response is handed on as it is, without a copy (`Set-Cookie` stays apart).
      dropHopByHop(response.headers)
      if (request.responseHeaders) applyHeaderRules(response.headers, request.responseHeaders)
      return response
    } catch (error) {
      throw this.failure(exchange.abortedFor ?? (limit?.exceeded ? 'too_large' : failureKindOf(error)), error, limits)
    } finally {
      deadlines.remove(exchange)
    }
  }

  /**
   * With several instances, a request counts as in flight until its response body ends, is
   * cancelled, or its client goes away (Bun does not always cancel the stream then). A small
   * body of declared length ends with its headers.
   */
  private countedUntilEnd(instance: Instance, response: Response, client: Request | undefined): Response {
    const source = response.body
    const declared = response.headers.get('content-length')
    if (source === null || (declared !== null && Number(declared) <= ENDS_WITH_HEADERS_BYTES)) {
      instance.inFlight--
      return response
    }
    const reader = source.getReader()
    let counted = true
    const finish = () => {
      if (!counted) return
      counted = false
      instance.inFlight--
      client?.signal.removeEventListener('abort', onClientGone)
    }
    const onClientGone = () => {
      finish()
      reader.cancel().catch(() => {})
    }
    client?.signal.addEventListener('abort', onClientGone, { once: true })
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            const { done, value } = await reader.read()
            if (done) {
              finish()
              controller.close()
            } else controller.enqueue(value)
          } catch (error) {
            finish()
            controller.error(error)
          }
        },
        cancel(reason) {
          finish()
          return reader.cancel(reason)
        },
      },
      { highWaterMark: 0 },
    )
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  }

  /** 503 while every instance is ejected, with the time until the next probe. */
  private unavailable(now: number): UpstreamFailure {
    const seconds = this.health.retryAfterSeconds(this.instances, now)
    const which = this.balanced ? 'every instance is' : 'the backend is'
    return new UpstreamFailure('ejected', this.name, `${which} out of rotation after repeated failures; next probe in ${seconds} s`, seconds)
  }

  private failure(kind: FailureKind, cause: unknown, limits: CallLimits): UpstreamFailure {
    if (FAILURES[kind].backendFault) this.shared.metrics.upstreamErrors.inc({ service: this.name, kind })
    return new UpstreamFailure(kind, this.name, failureMessage(kind, cause, limits))
  }
}

/**
 * The path on an instance for a path after the service prefix.
 * @example pathOn({ basePath: '/base', ... }, '/jobs') // '/base/jobs'; pathOn(instance, '') → '/base' (or '/')
 */
export function pathOn(instance: InstanceTarget, path: string): string {
  return instance.basePath + path || '/'
}

/** The retry rule (README, "Instances"): nothing reached a backend, or a GET/HEAD saw no byte of an answer. */
function isRetried(kind: FailureKind, method: string): boolean {
  if (kind === 'connect' || kind === 'tls') return true
  return kind === 'reset' && RETRIED_AFTER_RESET.has(method)
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
    case 'ejected':
      return 'out of rotation'
    case 'refused':
      return 'the backend refused the WebSocket upgrade'
  }
}

/**
 * Every service as an `Upstream`, and the instances behind them (README, "Instances"). A policy
 * reload makes new upstreams (`apply`) over the same instance objects, so an instance present
 * before and after keeps its health, its ejection and its requests in flight; an instance that is
 * gone leaves the metrics.
 */
export class Upstreams {
  private byName = new Map<string, Upstream>()
  /** By service and URL as configured. */
  private instances = new Map<string, Instance>()
  private readonly deadlines = new DeadlineQueues(WATCH_CLIENT_AFTER_MS)
  private readonly shared: Shared

  /** Starts with the environment's services (a policy file's come with `apply`). */
  constructor(
    config: Config,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.shared = { deadlines: this.deadlines, metrics }
    this.apply(policiesOfEnvironment(config))
  }

  /**
   * The upstreams of `policies`, from now on what `get` answers.
   * @returns every service's upstream, by name.
   */
  apply(policies: PolicySet): ReadonlyMap<string, Upstream> {
    const instances = new Map<string, Instance>()
    const byName = new Map<string, Upstream>()
    for (const [name, service] of policies.services) {
      const health = new PassiveHealth(service.circuit, this.logger, this.metrics)
      const mine = service.instances.map((target) => {
        const key = `${name}\n${target.url}`
        let instance = this.instances.get(key)
        if (instance === undefined) {
          instance = new Instance(name, target)
          health.register(instance)
        }
        instances.set(key, instance)
        return instance
      })
      byName.set(name, new Upstream(service, mine, health, this.shared))
    }
    for (const [key, instance] of this.instances) {
      if (instances.has(key)) continue
      // Requests still in flight on it end quietly: its series do not come back.
      instance.retired = true
      this.metrics.upstreamHealthy.remove({ service: instance.service, instance: instance.url })
    }
    this.deadlines.retainOnly(timeoutsOf(policies))
    this.instances = instances
    this.byName = byName
    return byName
  }

  /**
   * The service registered under `name` (as it appears in the URL), if any. A test seam: the
   * gateway takes its upstreams from the policy table; the upstream module's tests call them here.
   */
  get(name: string): Upstream | undefined {
    return this.byName.get(name)
  }

  /**
   * Exchanges waiting for response headers right now. A test seam: an exchange left in the
   * deadline queue is a leak that no response shows, only this count.
   */
  get waiting(): number {
    return this.deadlines.length
  }

  close(): void {
    this.deadlines.close()
  }
}

/** Every header timeout a policy set uses: the deadline queues to keep. */
function timeoutsOf(policies: PolicySet): Set<number> {
  const timeouts = new Set([policies.global.timeoutMs])
  for (const service of policies.services.values()) {
    timeouts.add(service.policy.timeoutMs)
    for (const route of service.routes) timeouts.add(route.policy.timeoutMs)
  }
  return timeouts
}
