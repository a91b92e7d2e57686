/**
 * The streams connected to this process, by client id, and the one heartbeat ticker they share.
 * The hub knows nothing of history or questions: brokers hand it framed events to deliver.
 */
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import { type CloseReason, SseConnection } from './connection'
import { createEnvelope } from './envelope'
import { frameControlEvent } from './sse'

export class Hub {
  private readonly byClient = new Map<string, Set<SseConnection>>()
  private connections = 0
  private readonly ticker: Timer

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

  /** Streams open on this process. */
  get size(): number {
    return this.connections
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
    const connection = new SseConnection(clientId, this.bufferLimit, (closed, reason) => this.closed(closed, reason))
    let streams = this.byClient.get(clientId)
    if (streams === undefined) this.byClient.set(clientId, (streams = new Set()))
    streams.add(connection)
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
    let delivered = 0
    for (const connection of streams) if (connection.sendLive(frame, id)) delivered++
    this.metrics.sseEventsDelivered.inc(delivered)
    return delivered
  }

  /** Closes every stream (shutdown: clients reconnect elsewhere and replay). */
  closeAll(reason: CloseReason): void {
    for (const streams of [...this.byClient.values()]) for (const connection of [...streams]) connection.close(reason)
  }

  stop(): void {
    clearInterval(this.ticker)
  }

  private beat(): void {
    if (this.connections === 0) return
    const frame = frameControlEvent(createEnvelope('heartbeat', {}))
    for (const streams of this.byClient.values()) for (const connection of streams) connection.heartbeat(frame)
  }

  private closed(connection: SseConnection, reason: CloseReason): void {
    const streams = this.byClient.get(connection.clientId)
    if (streams?.delete(connection)) {
      this.connections--
      this.metrics.sseConnections.dec()
      if (streams.size === 0) this.byClient.delete(connection.clientId)
    }
    if (reason === 'slow_consumer') this.metrics.sseSlowDisconnects.inc()
    this.logger.info(
      { client_id: connection.clientId, duration_ms: Date.now() - connection.openedAt, events_sent: connection.eventsSent, reason },
      'Event stream closed',
    )
  }
}
