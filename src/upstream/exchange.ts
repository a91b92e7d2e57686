/**
 * One exchange with a backend while it waits for response headers: the abort controller its
 * `fetch` listens to, its place in the deadline queue, and why the gateway aborted it, if it did.
 * The exchange is its own abort listener (`handleEvent`), so watching a client costs no closure.
 */
import type { Deadline } from './deadlines'

export type AbortCause = 'timeout' | 'client_gone'

export class Exchange implements Deadline, EventListenerObject {
  readonly controller = new AbortController()
  readonly startedAt = performance.now()
  prev: Deadline | null = null
  next: Deadline | null = null
  queued = false
  /** Set when the gateway aborted the exchange: the rejection of `fetch` then means this. */
  abortedFor: AbortCause | undefined = undefined

  /** @param client the request whose departure aborts the exchange; absent for the gateway's own calls. */
  constructor(private readonly client: Request | undefined) {}

  expire(): void {
    this.abort('timeout')
  }

  watchClient(): void {
    const signal = this.client?.signal
    if (signal === undefined) return
    if (signal.aborted) this.abort('client_gone')
    else signal.addEventListener('abort', this, { once: true })
  }

  /** The client's request signal fired: the client went away. */
  handleEvent(): void {
    this.abort('client_gone')
  }

  private abort(cause: AbortCause): void {
    if (this.abortedFor !== undefined) return
    this.abortedFor = cause
    this.controller.abort()
  }
}
