/**
 * The embedded broker: per-client history and pending questions in this process's memory,
 * delivered through the local hub. Everything here is synchronous, so a publish and a new
 * connection's replay can never interleave halfway.
 */
import type { EventsConfig } from '../config/settings'
import type { AnswerClaim, Broker, FramedEvent, PublishOutcome, PublishTarget, Replay } from './broker'
import { type EventEnvelope, QUESTION_EVENT_TYPE } from './envelope'
import type { Metrics } from '../ops/metrics'
import type { Hub } from './hub'
import { frameEvent } from './sse'

/** Framed at publish: a replay hands out these very bytes. */
interface Retained extends FramedEvent {
  expiresAt: number
}

interface PendingQuestion extends FramedEvent {
  expiresAt: number
  /** An answer is being forwarded to the hitl service right now. */
  claimed: boolean
}

/** Questions and answers are rare next to events: their maps exist only once needed. */
interface ClientState {
  history: Retained[]
  questions?: Map<string, PendingQuestion>
  /** Recently answered question ids (→ expiry), so a late second answer gets 409, not 404. */
  answered?: Map<string, number>
}

/** Answered ids remembered per client, beyond which the oldest are forgotten. */
const MAX_ANSWERED_REMEMBERED = 1_000
/** How often expired history, questions and empty client states are dropped. */
const SWEEP_INTERVAL_MS = 30_000

export class MemoryBroker implements Broker {
  private readonly clients = new Map<string, ClientState>()
  private readonly sweeper: Timer

  constructor(
    private readonly hub: Hub,
    private readonly config: EventsConfig,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS)
    this.sweeper.unref()
  }

  /** Clients with any retained state. A test seam: state the sweep failed to drop shows in no response, only here. */
  get trackedClients(): number {
    return this.clients.size
  }

  async publish(target: PublishTarget, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    const outcome = this.publishNow(target, envelope, publisherId)
    this.metrics.sseEventsDelivered.inc(outcome.delivered)
    return outcome
  }

  private publishNow(target: PublishTarget, envelope: EventEnvelope, publisherId: boolean): PublishOutcome {
    const clientIds = target === 'connected' ? this.hub.connectedClientIds() : target
    const frame = frameEvent(envelope)
    const now = this.now()
    // One retained entry shared by every client of a broadcast: same event, same frame, same expiry.
    const retained: Retained = { id: envelope.id, frame, expiresAt: now + this.config.historyTtlMs }
    let delivered = 0
    let fresh = 0
    for (const clientId of clientIds) {
      const state = this.stateOf(clientId, true)
      this.dropExpired(state, now)
      // Idempotent retries: an id this client already retains is not published again. Only a
      // publisher's own id can repeat; the gateway's UUIDv7s cannot, so their scan is skipped.
      if (publisherId && state.history.some((r) => r.id === envelope.id)) continue
      fresh++
      this.retain(state, retained)
      if (envelope.event_type === QUESTION_EVENT_TYPE) this.makePending(state, envelope, frame, now)
      delivered += this.hub.deliver(clientId, frame, envelope.id)
    }
    return { delivered, duplicate: clientIds.length > 0 && fresh === 0 }
  }

  async retainedAfter(clientId: string, lastEventId: string): Promise<Replay> {
    const state = this.stateOf(clientId, false)
    if (state === undefined) return { gap: lastEventId !== '0', events: [] }
    this.dropExpired(state, this.now())
    const events = state.history
    if (lastEventId === '0') return { gap: false, events: [...events] }
    const index = events.findIndex((retained) => retained.id === lastEventId)
    return index === -1 ? { gap: true, events: [...events] } : { gap: false, events: events.slice(index + 1) }
  }

  async pendingQuestions(clientId: string): Promise<FramedEvent[]> {
    const state = this.stateOf(clientId, false)
    if (state === undefined) return []
    this.dropExpired(state, this.now())
    return state.questions === undefined ? [] : [...state.questions.values()]
  }

  async claimAnswer(clientId: string, questionId: string): Promise<AnswerClaim> {
    const state = this.stateOf(clientId, false)
    if (state === undefined) return 'unknown'
    this.dropExpired(state, this.now())
    const question = state.questions?.get(questionId)
    if (question === undefined) return state.answered?.has(questionId) ? 'answered' : 'unknown'
    if (question.claimed) return 'answered'
    question.claimed = true
    return 'claimed'
  }

  async settleAnswer(clientId: string, questionId: string, answered: boolean): Promise<void> {
    const state = this.stateOf(clientId, false)
    const question = state?.questions?.get(questionId)
    if (state === undefined || question === undefined) return
    if (!answered) {
      question.claimed = false
      return
    }
    state.questions!.delete(questionId)
    const remembered = (state.answered ??= new Map())
    remembered.set(questionId, this.now() + this.config.questionTtlMs)
    if (remembered.size > MAX_ANSWERED_REMEMBERED) remembered.delete(remembered.keys().next().value!)
  }

  close(): void {
    clearInterval(this.sweeper)
  }

  /** Drops what has expired everywhere, and client states left with nothing. */
  sweep(now = this.now()): void {
    for (const [clientId, state] of this.clients) {
      this.dropExpired(state, now)
      if (state.history.length === 0 && !state.questions?.size && !state.answered?.size) this.clients.delete(clientId)
    }
  }

  private stateOf(clientId: string, create: true): ClientState
  private stateOf(clientId: string, create: false): ClientState | undefined
  private stateOf(clientId: string, create: boolean): ClientState | undefined {
    let state = this.clients.get(clientId)
    if (state === undefined && create) {
      state = { history: [] }
      this.clients.set(clientId, state)
    }
    return state
  }

  private retain(state: ClientState, retained: Retained): void {
    if (this.config.history === 0) return
    state.history.push(retained)
    if (state.history.length > this.config.history) state.history.shift()
  }

  private makePending(state: ClientState, envelope: EventEnvelope, frame: Uint8Array, now: number): void {
    const data = envelope.data as { question_id: string; expires_at?: string }
    const expiresAt = data.expires_at !== undefined ? Date.parse(data.expires_at) : now + this.config.questionTtlMs
    state.answered?.delete(data.question_id)
    ;(state.questions ??= new Map()).set(data.question_id, { id: envelope.id, frame, expiresAt, claimed: false })
  }

  private dropExpired(state: ClientState, now: number): void {
    let expired = 0
    while (expired < state.history.length && state.history[expired]!.expiresAt <= now) expired++
    if (expired > 0) state.history.splice(0, expired)
    const { questions, answered } = state
    if (questions !== undefined) {
      for (const [questionId, question] of questions) if (question.expiresAt <= now && !question.claimed) questions.delete(questionId)
    }
    if (answered !== undefined) {
      for (const [questionId, expiresAt] of answered) if (expiresAt <= now) answered.delete(questionId)
    }
  }
}
