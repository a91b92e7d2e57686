/**
 * The embedded broker's expiries on their way to `hitl` (README, "Questions", deadlines): each
 * POSTed at once, and again while `hitl` is unreachable or answers 5xx, after 1 s, doubling up
 * to 60 s, until `QUESTION_TTL_MS` has passed since the deadline. A few POSTs at a time, so ten
 * thousand questions expiring in one second do not open ten thousand connections.
 */
import { type DeliveryAttempt, retryDelayMs } from './hitl'
import type { ExpiryDelivery } from './questions'

/** POSTs in flight at once. */
const CONCURRENCY = 32

interface Entry {
  delivery: ExpiryDelivery
  attempts: number
  /** Epoch ms of the next attempt. */
  dueAt: number
}

export class ExpiryQueue {
  /** Due now, in the order they came (`head` is the next to start: no shifting of a long array). */
  private ready: Entry[] = []
  private head = 0
  /** Waiting for their retry, soonest first. */
  private later: Entry[] = []
  private inFlight = 0
  private timer: Timer | undefined
  private closed = false

  /** @param gaveUp told of a delivery given up (`QUESTION_TTL_MS` after the deadline). */
  constructor(
    private readonly deliver: (delivery: ExpiryDelivery) => Promise<DeliveryAttempt>,
    private readonly now: () => number,
    private readonly gaveUp: (delivery: ExpiryDelivery) => void,
  ) {}

  add(delivery: ExpiryDelivery): void {
    this.ready.push({ delivery, attempts: 0, dueAt: this.now() })
    this.pump()
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
  }

  /** Starts what is due, up to the concurrency; arms the timer for the next retry. */
  private pump(): void {
    if (this.closed) return
    const now = this.now()
    let due = 0
    while (due < this.later.length && this.later[due]!.dueAt <= now) due++
    if (due > 0) this.ready.push(...this.later.splice(0, due))
    while (this.inFlight < CONCURRENCY && this.head < this.ready.length) void this.attempt(this.ready[this.head++]!)
    if (this.head === this.ready.length) {
      this.ready = []
      this.head = 0
    }
    clearTimeout(this.timer)
    const next = this.later[0]
    if (next !== undefined) {
      this.timer = setTimeout(() => this.pump(), Math.max(0, next.dueAt - now))
      this.timer.unref()
    }
  }

  private async attempt(entry: Entry): Promise<void> {
    this.inFlight++
    entry.attempts++
    const outcome = await this.deliver(entry.delivery)
    this.inFlight--
    if (outcome === 'retry') {
      const dueAt = this.now() + retryDelayMs(entry.attempts)
      if (dueAt <= entry.delivery.giveUpAt) this.retryAt({ ...entry, dueAt })
      else this.gaveUp(entry.delivery)
    }
    this.pump()
  }

  /** Into `later`, kept sorted (a binary search for its place). */
  private retryAt(entry: Entry): void {
    let low = 0
    let high = this.later.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.later[middle]!.dueAt <= entry.dueAt) low = middle + 1
      else high = middle
    }
    this.later.splice(low, 0, entry)
  }
}
