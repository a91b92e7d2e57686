/**
 * The embedded broker: per-client history and questions in this process's memory, delivered
 * through the local hub. Everything here is synchronous, so a publish, a new connection's
 * replay and a question's transition can never interleave halfway. Deadlines fall due on one
 * timer; expiries are POSTed to `hitl` by `ExpiryQueue`, retried while it cannot take them.
 */
import type { EventsConfig } from '../config/settings'
import { GatewayError } from '../http/errors'
import type { Metrics } from '../ops/metrics'
import type { Broker, FramedEvent, PublishOutcome, PublishTarget, QuestionHooks, Replay } from './broker'
import { type EventEnvelope, createEnvelope } from './envelope'
import { ExpiryQueue } from './expiry-queue'
import type { Hub } from './hub'
import {
  type AnswerOutcome,
  type CancelOutcome,
  type Hold,
  QUESTION_EVENTS,
  type QuestionLookup,
  type QuestionSink,
  type QuestionSpec,
  type QuestionView,
  type RecordedAnswer,
  expiryBody,
  outcomeKey,
  questionView,
} from './questions'
import { frameEvent } from './sse'

/** Framed at publish: a replay hands out these very bytes. */
interface Retained extends FramedEvent {
  expiresAt: number
}

/** One question: shared by its approvers, or one client's own. */
interface Question {
  spec: QuestionSpec
  envelope: EventEnvelope
  framed: FramedEvent
  createdAt: number
  /** Until when it is pending (without a deadline) or remembered once closed. */
  leaveAt: number
  /** `superseded`: asked again under its id while pending; nothing of it happens any more. */
  state: 'pending' | 'answered' | 'expired' | 'cancelled' | 'superseded'
  recorded: RecordedAnswer[]
  /** The answer being forwarded to `hitl` right now, and its token. */
  hold: { token: Hold; answer: RecordedAnswer } | null
}

/** Questions are rare next to events: their map exists only once needed. */
interface ClientState {
  history: Retained[]
  questions?: Map<string, Question>
}

/** How often expired history, gone questions and empty client states are dropped. */
const SWEEP_INTERVAL_MS = 30_000
/** The longest delay `setTimeout` takes. */
const MAX_TIMER_MS = 2 ** 31 - 1

export interface MemoryBrokerOptions extends QuestionHooks {
  hub: Hub
  config: EventsConfig
  metrics: Metrics
  now?: () => number
}

export class MemoryBroker implements Broker {
  private readonly clients = new Map<string, ClientState>()
  private readonly sweeper: Timer
  private readonly hub: Hub
  private readonly config: EventsConfig
  private readonly metrics: Metrics
  private readonly sink: QuestionSink
  private readonly now: () => number
  /** Questions with a deadline, soonest first (a closed one is skipped when it comes up). */
  private deadlines: Question[] = []
  private deadlineTimer: Timer | undefined
  private readonly expiries: ExpiryQueue

  constructor(options: MemoryBrokerOptions) {
    this.hub = options.hub
    this.config = options.config
    this.metrics = options.metrics
    this.sink = options.sink
    this.now = options.now ?? Date.now
    this.expiries = new ExpiryQueue(options.deliver, this.now, options.gaveUp)
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS)
    this.sweeper.unref()
  }

  /** Clients with any retained state. A test seam: state the sweep failed to drop shows in no response, only here. */
  get trackedClients(): number {
    return this.clients.size
  }

  async publish(target: PublishTarget, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    const outcome = this.publishNow(target === 'connected' ? this.hub.connectedClientIds() : target, envelope, publisherId, undefined)
    this.metrics.sseEventsDelivered.inc(outcome.delivered)
    return outcome
  }

  async ask(target: PublishTarget, question: Omit<QuestionSpec, 'clientIds'>, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    const clientIds = target === 'connected' ? this.hub.connectedClientIds() : target
    // A retry of a publish that took effect is a no-op, as for any event: checked before what it would replace.
    const fresh = publisherId ? clientIds.filter((clientId) => !this.retains(clientId, envelope.id)) : clientIds
    for (const clientId of fresh) refuseReplacing(this.questionOf(clientId, question.questionId), question, clientId)
    const outcome = this.publishNow(clientIds, envelope, publisherId, question)
    this.metrics.sseEventsDelivered.inc(outcome.delivered)
    return outcome
  }

  /**
   * Retains `envelope` for each client (a question also becomes pending: one shared by the
   * approvers, else one per client) and queues it to their streams.
   */
  private publishNow(clientIds: readonly string[], envelope: EventEnvelope, publisherId: boolean, question: Omit<QuestionSpec, 'clientIds'> | undefined): PublishOutcome {
    const frame = frameEvent(envelope)
    const now = this.now()
    // One retained entry shared by every client of a broadcast: same event, same frame, same expiry.
    const retained: Retained = { id: envelope.id, frame, expiresAt: now + this.config.historyTtlMs }
    let delivered = 0
    const fresh: string[] = []
    for (const clientId of clientIds) {
      const state = this.stateOf(clientId, true)
      this.dropExpired(state, now)
      // Idempotent retries: an id this client already retains is not published again. Only a
      // publisher's own id can repeat; the gateway's UUIDv7s cannot, so their scan is skipped.
      if (publisherId && state.history.some((r) => r.id === envelope.id)) continue
      fresh.push(clientId)
      this.retain(state, retained)
      delivered += this.hub.deliver(clientId, frame, envelope.id)
    }
    if (question !== undefined && fresh.length > 0) {
      const groups = question.required === null ? fresh.map((clientId) => [clientId]) : [fresh]
      for (const group of groups) this.makePending({ ...question, clientIds: group }, envelope, { id: envelope.id, frame }, now)
    }
    return { delivered, duplicate: clientIds.length > 0 && fresh.length === 0 }
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
    return this.pendingFor(clientId).map((question) => question.framed)
  }

  async listQuestions(clientId: string): Promise<QuestionView[]> {
    return this.pendingFor(clientId).map((question) => questionView(question.envelope, question.createdAt, question.spec.deadline, question.spec.required, question.recorded.length))
  }

  async lookupQuestion(clientId: string, questionId: string): Promise<QuestionLookup> {
    const question = this.questionOf(clientId, questionId)
    if (question === undefined) return { kind: 'unknown' }
    const standing = standingOf(question, clientId, null)
    return standing === 'pending' ? { kind: 'pending', schema: question.spec.schema } : { kind: standing }
  }

  async answer(clientId: string, questionId: string, answer: RecordedAnswer): Promise<AnswerOutcome> {
    const question = this.questionOf(clientId, questionId)
    if (question === undefined) return { kind: 'unknown' }
    const standing = standingOf(question, clientId, answer.subject)
    if (standing !== 'pending') return { kind: standing }
    const required = question.spec.required
    if (required !== null && question.recorded.length + 1 < required) {
      question.recorded.push(answer)
      const progress = { question_id: questionId, recorded: question.recorded.length, required }
      this.announce(question, QUESTION_EVENTS.progress, progress)
      return { kind: 'recorded', recorded: progress.recorded, required }
    }
    const hold: Hold = crypto.randomUUID()
    question.hold = { token: hold, answer }
    return { kind: 'forward', hold, approvals: required !== null, responses: [...question.recorded, answer] }
  }

  async settle(clientId: string, questionId: string, hold: Hold, delivered: boolean): Promise<void> {
    const question = this.questionOf(clientId, questionId)
    if (question === undefined || question.hold?.token !== hold) return
    const answer = question.hold.answer
    question.hold = null
    if (!delivered) {
      // The answer is not recorded; a deadline that passed meanwhile takes effect now.
      if (question.spec.deadline !== null && question.spec.deadline <= this.now()) this.expire(question)
      return
    }
    question.recorded.push(answer)
    this.closeQuestion(question, 'answered')
    this.announce(question, QUESTION_EVENTS.answered, { question_id: questionId })
  }

  async cancel(clientId: string, questionId: string): Promise<CancelOutcome> {
    const question = this.questionOf(clientId, questionId)
    if (question === undefined) return 'unknown'
    if (question.state !== 'pending') return 'closed'
    if (question.hold !== null) return 'held'
    this.closeQuestion(question, 'cancelled')
    this.announce(question, QUESTION_EVENTS.cancelled, { question_id: questionId })
    return 'cancelled'
  }

  close(): void {
    clearInterval(this.sweeper)
    clearTimeout(this.deadlineTimer)
    this.expiries.close()
  }

  /** Drops what has expired everywhere, and client states left with nothing. */
  sweep(now = this.now()): void {
    for (const [clientId, state] of this.clients) {
      this.dropExpired(state, now)
      if (state.history.length === 0 && !state.questions?.size) this.clients.delete(clientId)
    }
  }

  /** The question `questionId` of `clientId`, open or remembered; undefined when never asked or gone. */
  private questionOf(clientId: string, questionId: string): Question | undefined {
    const state = this.stateOf(clientId, false)
    if (state === undefined) return undefined
    this.dropExpired(state, this.now())
    return state.questions?.get(questionId)
  }

  private retains(clientId: string, eventId: string): boolean {
    return this.stateOf(clientId, false)?.history.some((retained) => retained.id === eventId) ?? false
  }

  /** The questions pending for `clientId`, oldest first. */
  private pendingFor(clientId: string): Question[] {
    const state = this.stateOf(clientId, false)
    if (state?.questions === undefined) return []
    this.dropExpired(state, this.now())
    const pending = [...state.questions.values()].filter((question) => standingOf(question, clientId, null) === 'pending')
    return pending.sort((a, b) => a.createdAt - b.createdAt)
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

  private makePending(spec: QuestionSpec, envelope: EventEnvelope, framed: FramedEvent, now: number): void {
    const question: Question = { spec, envelope, framed, createdAt: now, leaveAt: now + this.config.questionTtlMs, state: 'pending', recorded: [], hold: null }
    for (const clientId of spec.clientIds) {
      const questions = (this.stateOf(clientId, true).questions ??= new Map())
      // Asked again (`refuseReplacing` allowed it): the old one is superseded, and its deadline
      // does nothing; the new one is kept in insertion order, so last.
      const old = questions.get(spec.questionId)
      if (old !== undefined && old.state === 'pending') old.state = 'superseded'
      questions.delete(spec.questionId)
      questions.set(spec.questionId, question)
    }
    this.sink.published()
    if (spec.deadline !== null) this.scheduleDeadline(question)
  }

  /** Keeps `deadlines` sorted and one timer armed for the soonest. */
  private scheduleDeadline(question: Question): void {
    const deadline = question.spec.deadline!
    let at = this.deadlines.length
    // Most questions come in deadline order: look from the end.
    while (at > 0 && this.deadlines[at - 1]!.spec.deadline! > deadline) at--
    this.deadlines.splice(at, 0, question)
    if (at === 0) this.armDeadlines()
  }

  private armDeadlines(): void {
    clearTimeout(this.deadlineTimer)
    const soonest = this.deadlines[0]
    if (soonest === undefined) return
    // setTimeout takes at most 2^31-1 ms (24.8 days); beyond, it would fire at once, again and again.
    this.deadlineTimer = setTimeout(() => this.expireDue(), Math.min(MAX_TIMER_MS, Math.max(0, soonest.spec.deadline! - this.now())))
    this.deadlineTimer.unref()
  }

  private expireDue(): void {
    const now = this.now()
    let due = 0
    while (due < this.deadlines.length && this.deadlines[due]!.spec.deadline! <= now) due++
    for (const question of this.deadlines.splice(0, due)) this.expire(question)
    this.armDeadlines()
  }

  /** The deadline passed: a pending question not being answered right now expires, and `hitl` is told. */
  private expire(question: Question): void {
    // Closed already, or replaced by a question asked again under its id; held ones settle first.
    if (question.state !== 'pending' || question.hold !== null || !this.isCurrent(question)) return
    this.closeQuestion(question, 'expired')
    const { spec } = question
    this.announce(question, QUESTION_EVENTS.expired, { question_id: spec.questionId })
    this.expiries.add({
      key: outcomeKey(spec.questionId, spec.clientIds, spec.required),
      questionId: spec.questionId,
      body: expiryBody(spec.questionId, spec.clientIds, spec, question.recorded),
      giveUpAt: spec.deadline! + this.config.questionTtlMs,
    })
  }

  private isCurrent(question: Question): boolean {
    return this.clients.get(question.spec.clientIds[0]!)?.questions?.get(question.spec.questionId) === question
  }

  private closeQuestion(question: Question, outcome: 'answered' | 'expired' | 'cancelled'): void {
    const now = this.now()
    question.state = outcome
    // Remembered a while, so a late answer gets 409 rather than 404.
    question.leaveAt = now + this.config.questionTtlMs
    this.sink.closed({
      outcome,
      questionId: question.spec.questionId,
      clientIds: question.spec.clientIds,
      subjects: question.recorded.flatMap((answer) => (answer.subject === null ? [] : [answer.subject])),
      openMs: now - question.createdAt,
    })
  }

  /** An event about a question, to every client it is (or was) pending for. */
  private announce(question: Question, eventType: string, data: Record<string, unknown>): void {
    const outcome = this.publishNow(question.spec.clientIds, createEnvelope(eventType, data), false, undefined)
    this.metrics.sseEventsDelivered.inc(outcome.delivered)
  }

  private dropExpired(state: ClientState, now: number): void {
    let expired = 0
    while (expired < state.history.length && state.history[expired]!.expiresAt <= now) expired++
    if (expired > 0) state.history.splice(0, expired)
    const questions = state.questions
    if (questions === undefined) return
    // A question without a deadline leaves silently after QUESTION_TTL_MS; a closed one is forgotten then.
    for (const [questionId, question] of questions) if (question.leaveAt <= now && question.hold === null) questions.delete(questionId)
  }
}

/**
 * A question about to be asked of `clientId` under the id of `existing`: an open approval, or a
 * question being answered right now, is not replaced (400); an open question of this client
 * alone is (the new one supersedes it).
 * @throws GatewayError `bad_request`.
 */
function refuseReplacing(existing: Question | undefined, asked: Omit<QuestionSpec, 'clientIds'>, clientId: string): void {
  if (existing === undefined || existing.state !== 'pending') return
  const quoted = `question ${JSON.stringify(asked.questionId)}`
  if (existing.hold !== null) throw new GatewayError('bad_request', `${quoted} is being answered for ${JSON.stringify(clientId)} right now`)
  if (existing.spec.required !== null || asked.required !== null) throw new GatewayError('bad_request', `${quoted} is already pending for ${JSON.stringify(clientId)}`)
}

/** Where `question` stands for `clientId` (and, with authentication, the token subject `subject`). */
function standingOf(question: Question, clientId: string, subject: string | null): 'pending' | 'answered' | 'closed' {
  if (question.state === 'answered') return 'answered'
  if (question.state !== 'pending') return 'closed'
  if (question.hold !== null) return 'answered'
  // One vote per approver: per client id, and per token subject when authentication is on.
  if (question.recorded.some((answer) => answer.client_id === clientId || (subject !== null && answer.subject === subject))) return 'answered'
  return 'pending'
}
