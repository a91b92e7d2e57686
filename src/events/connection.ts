/**
 * One event stream to one client: a `ReadableStream` of framed events with a bounded queue.
 *
 * Written over `ReadableStream` rather than `@elysiajs/stream` (see README, design notes): the
 * queue is bounded by count through `CountQueuingStrategy`, a slow reader is cut instead of
 * buffered without end, and closing is reported exactly once, however it happens.
 */

/**
 * `resync`: cluster mode regained Redis after an outage, and the client must reconnect to replay
 * what was published meanwhile.
 */
export type CloseReason = 'client_closed' | 'slow_consumer' | 'shutdown' | 'resync'

/** Told once when a connection closes, whatever closed it. */
export interface ConnectionOwner {
  connectionClosed(connection: SseConnection, reason: CloseReason): void
}

interface HeldEvent {
  frame: Uint8Array
  id: string
}

/**
 * The connection is its own stream source (`start`, `cancel`) and its own abort listener
 * (`handleEvent`): no closures per stream, which counts at tens of thousands of streams.
 */
export class SseConnection implements UnderlyingDefaultSource<Uint8Array>, EventListenerObject {
  readonly stream: ReadableStream<Uint8Array>
  readonly openedAt = Date.now()
  /** Events queued to this stream, heartbeats not counted. */
  eventsSent = 0
  /** Every frame ever enqueued, and how many of them were the opening burst. */
  private enqueuedTotal = 0
  private openingFrames = 0
  private controller!: ReadableStreamDefaultController<Uint8Array>
  private closedBy: CloseReason | undefined
  /** Live events that arrive while the opening frames (replay, questions) are being composed. */
  private held: HeldEvent[] | null = []

  /**
   * @param bufferLimit `SSE_BUFFER`: more frames than this waiting unsent closes the connection.
   * @param owner told once, with the reason, whatever closed the connection.
   */
  constructor(
    readonly clientId: string,
    private readonly bufferLimit: number,
    private readonly owner: ConnectionOwner,
  ) {
    // No size function: every frame counts 1, so the queue is bounded by count (CountQueuingStrategy).
    this.stream = new ReadableStream<Uint8Array>(this, { highWaterMark: bufferLimit })
  }

  /** Stream source: keeps the controller to enqueue frames. */
  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.controller = controller
  }

  /** Stream source: the response body was cancelled (the client went away). */
  cancel(): void {
    this.close('client_closed')
  }

  /** Abort listener on the request's signal, for when `cancel()` is not called (elysia#1768). */
  handleEvent(): void {
    this.close('client_closed')
  }

  get isOpen(): boolean {
    return this.closedBy === undefined
  }

  /**
   * Live frames (events and heartbeats after the opening burst) waiting unsent. The queue is
   * FIFO, so its newest `queued` frames are the waiting ones, and the opening burst drains first.
   */
  get liveQueued(): number {
    const queued = this.bufferLimit - (this.controller.desiredSize ?? 0)
    return Math.min(queued, this.enqueuedTotal - this.openingFrames)
  }

  /**
   * Queues a frame of the opening burst (`connection.established`, replay, pending questions).
   * The burst is bounded by `SSE_HISTORY` and the pending questions, not by `SSE_BUFFER`: it is
   * queued before the socket has had a chance to take anything.
   */
  sendOpening(frame: Uint8Array, countsAsEvent = true): void {
    if (!this.isOpen) return
    this.controller.enqueue(frame)
    this.enqueuedTotal++
    this.openingFrames++
    if (countsAsEvent) this.eventsSent++
  }

  /**
   * Queues a live event frame. A full queue closes the connection instead: the publisher never
   * waits, and the client reconnects and replays.
   * @returns whether the frame was queued.
   */
  send(frame: Uint8Array): boolean {
    if (!this.enqueue(frame)) return false
    this.eventsSent++
    return true
  }

  /** A heartbeat: queued like an event, not counted as one. */
  heartbeat(frame: Uint8Array): boolean {
    return this.enqueue(frame)
  }

  /** A live event: held back while the connection is still sending its opening frames. */
  sendLive(frame: Uint8Array, id: string): boolean {
    if (!this.isOpen) return false
    if (this.held !== null) {
      this.held.push({ frame, id })
      return true
    }
    return this.send(frame)
  }

  /** Ends the opening phase: sends the held live events, skipping those the opening already sent. */
  goLive(alreadySent: ReadonlySet<string>): void {
    const held = this.held ?? []
    this.held = null
    for (const event of held) if (!alreadySent.has(event.id)) this.send(event.frame)
  }

  /** Closes once; a slow consumer's queue is discarded, a shutdown or resync flushes what is queued. */
  close(reason: CloseReason): void {
    if (this.closedBy !== undefined) return
    this.closedBy = reason
    this.held = null
    try {
      if (reason === 'slow_consumer') this.controller.error(new Error('event stream reader too slow'))
      else if (reason === 'shutdown' || reason === 'resync') this.controller.close()
    } catch {
      // Already cancelled by the client side: nothing left to close.
    }
    this.owner.connectionClosed(this, reason)
  }

  private enqueue(frame: Uint8Array): boolean {
    if (this.closedBy !== undefined) return false
    if (this.liveQueued >= this.bufferLimit) {
      this.close('slow_consumer')
      return false
    }
    this.controller.enqueue(frame)
    this.enqueuedTotal++
    return true
  }
}
