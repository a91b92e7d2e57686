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
  /** Waiting for their turn or their retry, soonest first. */
  private waiting: Entry[] = []
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
    this.waiting.push({ delivery, attempts: 0, dueAt: this.now() })
    this.pump()
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
  }

  /** Starts what is due, up to the concurrency; arms the timer for the next retry. */
  private pump(): void {
    if (this.closed) return
    clearTimeout(this.timer)
    const now = this.now()
    this.waiting.sort((a, b) => a.dueAt - b.dueAt)
    while (this.inFlight < CONCURRENCY && this.waiting.length > 0 && this.waiting[0]!.dueAt <= now) void this.attempt(this.waiting.shift()!)
    const next = this.waiting[0]
    if (next !== undefined && this.inFlight < CONCURRENCY) {
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
      if (dueAt <= entry.delivery.giveUpAt) this.waiting.push({ ...entry, dueAt })
      else this.gaveUp(entry.delivery)
    }
    this.pump()
  }
}
