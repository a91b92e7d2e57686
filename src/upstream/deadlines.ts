/**
 * The header deadlines of every exchange in flight, in one FIFO per timeout swept by a single
 * timer (README, "Design notes"). Every exchange of a queue gets the same timeout, so its
 * deadlines fall due in arrival order: the oldest is always at the head, and one timer armed
 * for the next due time replaces a `setTimeout`/`clearTimeout` pair per request.
 *
 * The same walk starts watching the client of an exchange that has waited `watchAfterMs`:
 * listening to every request's abort signal costs more than the rest of the queue, and a
 * client can only usefully abort a request that is still waiting.
 */

/** An entry of the queue: the queue owns the links, the exchange decides what expiring means. */
export interface Deadline {
  /** `performance.now()` when the exchange started. */
  readonly startedAt: number
  /** Linked-list pointers, owned by the queue. */
  prev: Deadline | null
  next: Deadline | null
  queued: boolean
  /** The deadline passed before the exchange finished. */
  expire(): void
  /** The exchange has waited long enough that its client's departure should abort it. */
  watchClient(): void
}

export class DeadlineQueue {
  private head: Deadline | null = null
  private tail: Deadline | null = null
  /** The oldest entry whose client is not watched yet (entries before it are). */
  private unwatched: Deadline | null = null
  private timer: Timer | undefined
  /** When the timer fires (Infinity when it is not armed). */
  private timerDue = Number.POSITIVE_INFINITY
  private readonly onTimer = () => this.sweep()
  private closed = false
  private size = 0

  /**
   * @param timeoutMs every entry expires this long after its start.
   * @param watchAfterMs and has its client watched this long after its start.
   */
  constructor(
    private readonly timeoutMs: number,
    private readonly watchAfterMs: number,
  ) {}

  /** Entries in flight. */
  get length(): number {
    return this.size
  }

  /** Appends an entry that started now (after every entry already queued). */
  add(entry: Deadline): void {
    entry.prev = this.tail
    entry.next = null
    entry.queued = true
    if (this.tail === null) this.head = entry
    else this.tail.next = entry
    this.tail = entry
    this.unwatched ??= entry
    this.size++
    // Later entries fall due later, so the armed timer is early enough, unless it was armed for a
    // far deadline while nothing waited to be watched.
    if (entry.startedAt + Math.min(this.watchAfterMs, this.timeoutMs) < this.timerDue) this.arm(performance.now())
  }

  /** Takes an entry out once its exchange has its response headers (or failed); safe to repeat. */
  remove(entry: Deadline): void {
    if (!entry.queued) return
    entry.queued = false
    if (entry === this.unwatched) this.unwatched = entry.next
    if (entry.prev === null) this.head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === null) this.tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = entry.next = null
    this.size--
  }

  /** Stops the timer for good (shutdown); entries queued before or after never expire. */
  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerDue = Number.POSITIVE_INFINITY
  }

  private sweep(): void {
    this.timer = undefined
    this.timerDue = Number.POSITIVE_INFINITY
    const now = performance.now()
    while (this.head !== null && this.head.startedAt + this.timeoutMs <= now) {
      const expired = this.head
      this.remove(expired)
      expired.expire()
    }
    while (this.unwatched !== null && this.unwatched.startedAt + this.watchAfterMs <= now) {
      const entry = this.unwatched
      this.unwatched = entry.next
      entry.watchClient()
    }
    this.arm(now)
  }

  /** Sets the one timer for whatever falls due next, if anything is queued. */
  private arm(now: number): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerDue = Number.POSITIVE_INFINITY
    if (this.head === null || this.closed) return
    let due = this.head.startedAt + this.timeoutMs
    if (this.unwatched !== null) due = Math.min(due, this.unwatched.startedAt + this.watchAfterMs)
    this.timerDue = due
    this.timer = setTimeout(this.onTimer, Math.max(0, due - now))
    this.timer.unref()
  }
}

/**
 * One `DeadlineQueue` per distinct timeout (README, "Policies": a route may set its own
 * `timeout_ms`). Within a queue deadlines still fall due in arrival order; a gateway has as many
 * queues, and timers, as distinct timeouts in its policies, not one per request.
 */
export class DeadlineQueues {
  private readonly byTimeout = new Map<number, DeadlineQueue>()
  private closed = false

  /** @param watchAfterMs every queue watches the clients of entries that waited this long. */
  constructor(private readonly watchAfterMs: number) {}

  /** The queue of exchanges waiting at most `timeoutMs`. */
  forTimeout(timeoutMs: number): DeadlineQueue {
    let queue = this.byTimeout.get(timeoutMs)
    if (queue === undefined) {
      queue = new DeadlineQueue(timeoutMs, this.watchAfterMs)
      if (this.closed) queue.close()
      this.byTimeout.set(timeoutMs, queue)
    }
    return queue
  }

  /**
   * Forgets the queues of timeouts no policy uses any more, once they are empty; a queue with
   * entries keeps its timer until they are done.
   */
  retainOnly(timeouts: ReadonlySet<number>): void {
    for (const [timeout, queue] of this.byTimeout) if (!timeouts.has(timeout) && queue.length === 0) this.byTimeout.delete(timeout)
  }

  /** Entries in flight, in every queue. */
  get length(): number {
    let length = 0
    for (const queue of this.byTimeout.values()) length += queue.length
    return length
  }

  close(): void {
    this.closed = true
    for (const queue of this.byTimeout.values()) queue.close()
  }
}
