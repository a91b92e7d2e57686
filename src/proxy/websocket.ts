/**
 * WebSocket proxying (README, "WebSocket proxying"): an upgrade to `/api/v1/<service>/...` is
 * admitted like any request (rate limit, authentication, and the `CORS_ORIGINS` origin check
 * against cross-site WebSocket hijacking), the backend's WebSocket is opened first, and only
 * once the backend accepted is the client upgraded, with the backend's subprotocol. Then each
 * session relays messages both ways, in order and unchanged, and passes closes on.
 *
 * Bun's limits, worked around or written down:
 * - `server.upgrade()` needs the original `Request` (oven-sh/bun#11382): the pipeline hands it on.
 * - Bun would echo the client's `Sec-WebSocket-Protocol` (#18243): the 101 is given the backend's
 *   choice explicitly.
 * - The client `WebSocket` always reports `bufferedAmount` 0 (#31760): a backend that stops
 *   reading cannot be noticed, so only the client direction is bounded.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun'
import type { CorsPolicy } from '../http/cors'
import { GatewayError } from '../http/errors'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import type { RequestContext } from '../request/context'
import { writeGatewayHeaders } from '../request/gateway-headers'
import type { OpenedWebSocket } from '../upstream/upstream'
import { targetOf } from './handler'
import { applyHeaderRules } from '../http/header-rules'
import { prepareUpstreamHeaders } from './headers'

/** A client whose unsent backlog passes this is disconnected: a slow reader cannot grow the gateway's memory. */
export const MAX_CLIENT_BACKLOG_BYTES = 1024 * 1024
/** Bun pings an idle client shortly before this, and closes one that answered nothing for this long. */
const IDLE_TIMEOUT_SECONDS = 60
/** RFC 6455 §7.4.1 codes. */
const GOING_AWAY = 1001
const POLICY_VIOLATION = 1008
const INTERNAL_ERROR = 1011
/** Received when a peer closed without a status (1005) or vanished (1006): never sent in a close frame. */
const NO_STATUS = 1005
const ABNORMAL = 1006
/** A backend that does not answer the gateway's close frame within this long has its socket cut. */
const BACKEND_CLOSE_HANDSHAKE_MS = 5_000
/** RFC 9110 §5.6.2 token: what a subprotocol name must be (RFC 6455 §4.1). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** RFC 6455 §4.1: the one protocol version, and a key of 16 bytes in base64. */
const WEBSOCKET_VERSION = '13'
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/

/** RFC 6455 §5.5: a close frame's payload is at most 125 bytes, two of them the code. */
const MAX_REASON_BYTES = 123

/**
 * A code that may be sent in a close frame (RFC 6455 §7.4): 1000–1003, 1007–1014, 3000–4999.
 * Anything else a peer reported (1015, a TLS failure, or nonsense) is passed on as 1011.
 */
function sendableCode(code: number): number {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999) ? code : INTERNAL_ERROR
}

/** Closes `socket` with `code` (none: a plain close) and `reason` cut to fit a frame; never throws. */
function closeSafely(socket: { close(code?: number, reason?: string): void }, code: number | undefined, reason: string): void {
  try {
    if (code === undefined) socket.close()
    else socket.close(sendableCode(code), Buffer.byteLength(reason) <= MAX_REASON_BYTES ? reason : Buffer.from(reason).subarray(0, MAX_REASON_BYTES).toString().replace(/\uFFFD$/, ''))
  } catch {
    try {
      socket.close()
    } catch {}
  }
}

/** The client's `Sec-WebSocket-*` headers describe its handshake with the gateway, not the backend's. */
const HANDSHAKE_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol'] as const

export interface SessionData {
  session: WebSocketSession
}

/**
 * Whether a request asks for a WebSocket (RFC 6455 §4.1: GET, `Upgrade: websocket`).
 * @example isWebSocketUpgrade(ctx) // true for GET with Upgrade: websocket
 */
export function isWebSocketUpgrade(ctx: RequestContext): boolean {
  return ctx.method === 'GET' && ctx.headers.get('upgrade')?.toLowerCase() === 'websocket'
}

/**
 * The subprotocols a client offers, in its order; a handshake the gateway could not complete
 * (no valid key, another version, a malformed or repeated subprotocol) is refused with 400
 * before any backend is contacted.
 * @throws GatewayError `bad_request`.
 */
function offeredProtocols(headers: Headers): string[] {
  if (!WEBSOCKET_KEY.test(headers.get('sec-websocket-key') ?? '') || headers.get('sec-websocket-version') !== WEBSOCKET_VERSION) {
    throw new GatewayError('bad_request', `a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: ${WEBSOCKET_VERSION}`)
  }
  const offered = headers.get('sec-websocket-protocol')
  if (offered === null) return []
  const protocols = offered.split(',').map((p) => p.trim())
  if (protocols.some((p) => !TOKEN.test(p)) || new Set(protocols).size !== protocols.length) {
    throw new GatewayError('bad_request', 'Sec-WebSocket-Protocol must be a comma list of distinct tokens')
  }
  return protocols
}

/** One relayed session: the client's socket (once upgraded) and the backend's. */
export class WebSocketSession {
  client: ServerWebSocket<SessionData> | null = null
  /** Backend messages that arrived before the client's upgrade completed, sent once it has. */
  private early: (string | ArrayBuffer)[] | null = []
  private ended = false
  /** The session ended before the client's upgrade completed: how the client is closed once it has. */
  private clientCloseDue: [code: number | undefined, reason: string] | undefined
  readonly startedAt = performance.now()
  messagesToClient = 0
  messagesToBackend = 0

  constructor(
    private readonly bridge: WebSocketBridge,
    private readonly backend: OpenedWebSocket,
    readonly ctx: { requestId: string; service: string; clientIp: string },
  ) {
    const socket = backend.socket
    socket.onmessage = (event) => this.toClient(event.data as string | ArrayBuffer)
    socket.onclose = (event) => this.backendClosed(event.code, event.reason)
    socket.onerror = () => this.end(INTERNAL_ERROR, 'the backend failed')
  }

  /** The client's upgrade completed: what the backend sent meanwhile goes first, then its close if it closed. */
  opened(client: ServerWebSocket<SessionData>): void {
    this.client = client
    const early = this.early ?? []
    this.early = null
    for (const message of early) this.deliver(client, message)
    if (this.clientCloseDue !== undefined) closeSafely(client, ...this.clientCloseDue)
  }

  /** A message from the client, to the backend. */
  fromClient(message: string | Buffer): void {
    if (this.ended) return
    this.messagesToBackend++
    this.bridge.metrics.websocketMessageCounts.to_backend++
    this.backend.socket.send(message as string | Uint8Array<ArrayBuffer>)
  }

  /** The client closed, or vanished (1006): the backend is told, with the same code where one can be sent. */
  clientClosed(code: number, reason: string): void {
    if (this.ended) return
    this.finish('client', code)
    if (code === ABNORMAL) this.closeBackend(GOING_AWAY, 'the client went away')
    else this.closeBackend(code === NO_STATUS ? undefined : code, reason)
  }

  /** The gateway ends the session: the client hears `code` (1001 shutdown, 1008 too slow, 1011 backend failed), the backend 1001. */
  end(code: number, reason: string): void {
    if (this.ended) return
    this.finish('gateway', code)
    this.closeClient(code, reason)
    this.closeBackend(GOING_AWAY, reason)
  }

  /** Bun's client has no close-handshake timeout: a backend that never answers the close is cut. */
  private closeBackend(code: number | undefined, reason: string): void {
    const socket = this.backend.socket
    closeSafely(socket, code, reason)
    setTimeout(() => {
      if (socket.readyState !== WebSocket.CLOSED) (socket as WebSocket & { terminate(): void }).terminate()
    }, BACKEND_CLOSE_HANDSHAKE_MS).unref()
  }

  private closeClient(code: number | undefined, reason: string): void {
    if (this.client === null) this.clientCloseDue = [code, reason]
    else closeSafely(this.client, code, reason)
  }

  private toClient(message: string | ArrayBuffer): void {
    if (this.ended) return
    if (this.client === null) {
      this.early?.push(message)
      return
    }
    this.deliver(this.client, message)
    if (this.client.getBufferedAmount() > MAX_CLIENT_BACKLOG_BYTES) {
      this.end(POLICY_VIOLATION, `client too slow: more than ${MAX_CLIENT_BACKLOG_BYTES} bytes waiting`)
    }
  }

  private deliver(client: ServerWebSocket<SessionData>, message: string | ArrayBuffer): void {
    this.messagesToClient++
    this.bridge.metrics.websocketMessageCounts.to_client++
    client.send(message)
  }

  private backendClosed(code: number, reason: string): void {
    if (this.ended) return
    this.finish('backend', code)
    if (code === ABNORMAL) this.closeClient(INTERNAL_ERROR, 'the backend went away')
    else this.closeClient(code === NO_STATUS ? undefined : code, reason)
  }

  private finish(by: 'client' | 'backend' | 'gateway', code: number): void {
    this.ended = true
    this.backend.release()
    this.bridge.ended(this, by, code)
  }
}

/** Every WebSocket session of this process, and the handlers Bun.serve calls for the client side. */
export class WebSocketBridge {
  private readonly sessions = new Set<WebSocketSession>()
  /** Shutdown has begun: an upgrade whose backend answers from now on is not completed. */
  private closing = false

  constructor(
    readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly cors: CorsPolicy,
  ) {}

  /**
   * The handle step of an upgrade: admitted, backend first, then the client's 101.
   * @returns undefined once the client is upgraded (Bun answers it).
   * @throws GatewayError 403 for a listed-origins violation; UpstreamFailure when the backend cannot be had.
   */
  async upgrade(ctx: RequestContext, scheme: 'http' | 'https'): Promise<Response | undefined> {
    const origin = ctx.headers.get('origin')
    if (origin !== null && !this.cors.allowsOrigin(origin)) {
      throw new GatewayError('forbidden', `WebSocket from origin ${origin} is not allowed (CORS_ORIGINS)`)
    }
    const server = ctx.server
    if (server === undefined) throw new GatewayError('bad_request', 'a WebSocket upgrade needs a listening server')
    const protocols = offeredProtocols(ctx.headers)
    // Sessions live for hours and may be silent: no idle cut-off of the HTTP phase either.
    ctx.keepOpen()
    // A copy: the request's own headers must stay whole for `server.upgrade()` (prepare works in place).
    const headers = prepareUpstreamHeaders(new Headers(ctx.headers), ctx, scheme)
    for (const name of HANDSHAKE_HEADERS) headers.delete(name)
    const policy = ctx.active!.policy
    if (policy.requestHeaders !== null) applyHeaderRules(headers, policy.requestHeaders)
    const backend = await ctx.upstream!.openWebSocket({
      target: targetOf(ctx),
      headers,
      protocols,
      client: ctx.request,
      record: ctx,
      limits: policy,
    })
    if (this.closing) {
      closeSafely(backend.socket, GOING_AWAY, 'the gateway is shutting down')
      backend.release()
      throw new GatewayError('service_unavailable', 'the gateway is shutting down')
    }
    // Counted from here: the backend may close before the client's upgrade completes, and the
    // session must then still end once, and close the client as soon as it is there.
    const session = new WebSocketSession(this, backend, { requestId: ctx.requestId, service: ctx.upstream!.name, clientIp: ctx.clientIp })
    this.sessions.add(session)
    this.metrics.websocketSessions.inc()
    // Bun answers the 101 itself, so the respond step never sees it: the gateway headers go on here.
    const answer = new Headers()
    if (backend.socket.protocol !== '') answer.set('sec-websocket-protocol', backend.socket.protocol)
    writeGatewayHeaders(ctx, answer, this.cors)
    if (!(server as Server<SessionData>).upgrade(ctx.request, { data: { session }, headers: answer })) {
      session.end(GOING_AWAY, 'the client upgrade failed')
      throw new GatewayError('bad_request', 'the WebSocket upgrade request is not valid')
    }
    return undefined
  }

  /** For `Bun.serve({ websocket })`. */
  readonly handlers: WebSocketHandler<SessionData> = {
    idleTimeout: IDLE_TIMEOUT_SECONDS,
    sendPings: true,
    // Bun drops messages past this; the session closes itself at 1 MiB, well before.
    backpressureLimit: 16 * MAX_CLIENT_BACKLOG_BYTES,
    maxPayloadLength: 16 * 1024 * 1024,
    open: (ws) => ws.data.session.opened(ws),
    message: (ws, message) => ws.data.session.fromClient(message),
    close: (ws, code, reason) => ws.data.session.clientClosed(code, reason),
  }

  /** Shutdown: every session closed at once with 1001 on both sides, and no new one completed. */
  closeAll(): void {
    this.closing = true
    for (const session of [...this.sessions]) session.end(GOING_AWAY, 'the gateway is shutting down')
  }

  /** A session ended (called once per session). */
  ended(session: WebSocketSession, by: 'client' | 'backend' | 'gateway', code: number): void {
    if (!this.sessions.delete(session)) return
    this.metrics.websocketSessions.dec()
    this.logger.info(
      {
        service: session.ctx.service,
        request_id: session.ctx.requestId,
        client_ip: session.ctx.clientIp,
        closed_by: by,
        code,
        duration_ms: Math.round(performance.now() - session.startedAt),
        messages_to_client: session.messagesToClient,
        messages_to_backend: session.messagesToBackend,
      },
      'WebSocket session closed',
    )
  }
}
