/**
 * The streams connected to this process, by client id, and the one heartbeat ticker they share.
 * The hub knows nothing of history or questions: brokers hand it framed events to deliver.
 */
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { type CloseReason, type ConnectionOwner, SseConnection } from './connection'
import { createEnvelope } from './envelope'
import { frameControlEvent } from './sse'

export class Hub implements ConnectionOwner {
  /** A client's one connection, or a Set once it has several (most clients have one: a Set each would cost memory). */
  private readonly byClient = new Map<string, SseConnection | Set<SseConnection>>()
  private connections = 0
  private readonly ticker: Timer
  /** Told each time a client's count of streams here changes (cluster presence). */
  private countListener: ((clientId: string, count: number) => void) | undefined

  constructor(
    heartbeatMs: number,
    private readonly bufferLimit: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    // One timer for every stream: tens of thousands of per-connection timers would cost far more.
    this.ticker = setInterval(() => this.beat(), heartbeatMs)
    this.ticker.unref()
  }

  /** Registers the one listener told when a client's count of streams here changes. */
  onStreamCountChange(listener: (clientId: string, count: number) => void): void {
    this.countListener = listener
  }

  /** Each client with streams here, and how many. */
  *streamCounts(): Iterable<[string, number]> {
    for (const [clientId, streams] of this.byClient) yield [clientId, countOf(streams)]
  }

  /** How many streams `clientId` has open here. */
  streamCount(clientId: string): number {
    return countOf(this.byClient.get(clientId))
  }

  /** Whether `clientId` has a stream here. */
  hasStreams(clientId: string): boolean {
    return this.byClient.has(clientId)
  }

  /** Client ids with at least one open stream here. */
  connectedClientIds(): string[] {
    return [...this.byClient.keys()]
  }

  /**
   * A new stream for `clientId`, registered at once so no live event is missed while its
   * opening frames are composed (they are held until `goLive`).
   */
  open(clientId: string, details: Record<string, unknown>): SseConnection {
    const connection = new SseConnection(clientId, this.bufferLimit, this)
    const existing = this.byClient.get(clientId)
    if (existing === undefined) this.byClient.set(clientId, connection)
    else if (existing instanceof Set) existing.add(connection)
    else this.byClient.set(clientId, new Set([existing, connection]))
    this.countListener?.(clientId, countOf(this.byClient.get(clientId)))
    this.connections++
    this.metrics.sseConnections.inc()
    this.logger.info({ client_id: clientId, ...details }, 'Event stream opened')
    return connection
  }

  /**
   * Queues one framed event to every stream of `clientId`.
   * @returns how many streams it was queued to.
   */
  deliver(clientId: string, frame: Uint8Array, id: string): number {
    const streams = this.byClient.get(clientId)
    if (streams === undefined) return 0
    if (!(streams instanceof Set)) return streams.sendLive(frame, id) ? 1 : 0
    let delivered = 0
    for (const connection of streams) if (connection.sendLive(frame, id)) delivered++
    return delivered
  }

  /** Closes every stream (shutdown: clients reconnect elsewhere and replay). */
  closeAll(reason: CloseReason): void {
    for (const connection of this.all()) connection.close(reason)
  }

  stop(): void {
    clearInterval(this.ticker)
  }

  private beat(): void {
    if (this.connections === 0) return
    const frame = frameControlEvent(createEnvelope('heartbeat', {}))
    for (const connection of this.all()) connection.heartbeat(frame)
  }

  /** A snapshot of every open connection (closing one while iterating the map is then safe). */
  private all(): SseConnection[] {
    const all: SseConnection[] = []
    for (const streams of this.byClient.values()) {
      if (streams instanceof Set) all.push(...streams)
      else all.push(streams)
    }
    return all
  }

  connectionClosed(connection: SseConnection, reason: CloseReason): void {
    const streams = this.byClient.get(connection.clientId)
    let removed = false
    if (streams === connection) {
      this.byClient.delete(connection.clientId)
      removed = true
    } else if (streams instanceof Set && streams.delete(connection)) {
      removed = true
      if (streams.size === 1) this.byClient.set(connection.clientId, [...streams][0]!)
    }
    if (removed) {
      this.countListener?.(connection.clientId, countOf(this.byClient.get(connection.clientId)))
      this.connections--
      this.metrics.sseConnections.dec()
    }
    if (reason === 'slow_consumer') this.metrics.sseSlowDisconnects.inc()
    this.logger.info(
      { client_id: connection.clientId, duration_ms: Date.now() - connection.openedAt, events_sent: connection.eventsSent, reason },
      'Event stream closed',
    )
  }
}

/** How many streams one entry of `byClient` holds (none for a client without one). */
function countOf(streams: SseConnection | Set<SseConnection> | undefined): number {
  return streams === undefined ? 0 : streams instanceof Set ? streams.size : 1
}
