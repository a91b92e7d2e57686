/**
 * The cluster broker (README, "Cluster mode"): history, questions and publisher ids live in
 * Redis, so every gateway sharing it gives the same answers; each publish is one atomic script
 * that retains the event, counts the streams across the cluster and announces it on one
 * channel, from which every other instance delivers it to its own streams. Each transition of
 * a question (events/questions.ts) is one script too, and deadlines and their deliveries to
 * `hitl` are taken by whichever gateway's script gets to them first.
 *
 * While Redis is unreachable nothing is half-done: publishing and answering are refused at once
 * (503), and new streams open with a `replay.gap` instead of a replay. When Redis returns, the
 * streams here are closed so their clients reconnect and replay what they missed.
 */
import type { EventsConfig } from '../config/settings'
import type { Presence } from '../cluster/presence'
import { PRESENCE_WINDOW_MS } from '../cluster/presence'
import { type RedisLink, RedisTimeout, RedisUnavailable } from '../cluster/redis-link'
import { GatewayError } from '../http/errors'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import type { Broker, FramedEvent, PublishOutcome, PublishTarget, QuestionHooks, Replay } from './broker'
import type { EventEnvelope } from './envelope'
import { retryDelayMs } from './hitl'
import type { Hub } from './hub'
import type {
  AnswerOutcome,
  CancelOutcome,
  ExpiryDelivery,
  Hold,
  QuestionLookup,
  QuestionOutcome,
  QuestionSpec,
  QuestionView,
  RecordedAnswer,
} from './questions'
import { questionView } from './questions'
import { ANSWER, CANCEL, CLAIM_DELIVERIES, DELIVERED, EXPIRE_DUE, LOOKUP, PENDING, PUBLISH, REPLAY, SETTLE } from './redis-scripts'
import { SharedFrames } from './shared-frames'
import { frameEvent } from './sse'

export interface RedisBrokerOptions extends QuestionHooks {
  hub: Hub
  config: EventsConfig
  link: RedisLink
  presence: Presence
  prefix: string
  metrics: Metrics
  logger: Logger
  /**
   * How long a hold (an answer being forwarded) or a claimed expiry delivery lasts should its
   * gateway die before finishing: the longest a call to `hitl` may take, and a margin.
   */
  leaseMs: () => number
}

/** How often this gateway looks for deadlines due and expiries to deliver: deadlines are met within 1 s. */
const EXPIRY_TICK_MS = 250
/** Deadlines expired by one script: a large batch holds Redis up for everyone else. */
const EXPIRE_BATCH = 200
/** Expiry POSTs in flight at once from this gateway. */
const DELIVERY_CONCURRENCY = 32

export class RedisBroker implements Broker {
  private readonly channel: string
  /** What streams replay from Redis, framed once however many streams send it. */
  private readonly historyFrames = new SharedFrames()
  private readonly questionFrames = new SharedFrames()
  /** Per client, the read of its stored events under way here (see `inTurn`). */
  private readonly readsInTurn = new Map<string, Promise<void>>()
  private readonly expiryTimer: Timer
  /** A pass over the deadlines and deliveries is under way; another is not started beside it. */
  private expiring = false
  private deliveriesInFlight = 0
  private closed = false

  constructor(private readonly options: RedisBrokerOptions) {
    this.channel = `${options.prefix}events`
    void options.link.subscribe(this.channel, (message) => this.relay(message))
    // Whatever was published while this instance could not hear it is in the history: the
    // clients reconnect and replay it, from a Redis that may not be the one the frames came from.
    options.link.onReconnect(() => {
      this.historyFrames.clear()
      this.questionFrames.clear()
      options.hub.closeAll('resync')
    })
    // Every gateway looks; the scripts let one take each deadline and each delivery.
    this.expiryTimer = setInterval(() => void this.expireAndDeliver(), EXPIRY_TICK_MS)
    this.expiryTimer.unref()
  }

  async publish(target: PublishTarget, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    return (await this.publishWith(target, envelope, publisherId, '')).outcome
  }

  async ask(target: PublishTarget, question: Omit<QuestionSpec, 'clientIds'>, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    const stored = JSON.stringify({
      qid: question.questionId,
      // The key of the question's state: unique, unlike a publisher's event id, which may come again.
      id: Bun.randomUUIDv7(),
      required: question.required === null ? '' : String(question.required),
      deadline: question.deadline === null ? '' : String(question.deadline),
      schema: question.schema === null ? '' : JSON.stringify(question.schema),
      default: question.hasDefault ? JSON.stringify(question.defaultResponse ?? null) : '',
    })
    const { outcome, fresh } = await this.publishWith(target, envelope, publisherId, stored)
    // Counted as the embedded broker counts: an approval is one question, else one per client.
    const asked = question.required === null ? fresh.length : Math.min(1, fresh.length)
    for (let i = 0; i < asked; i++) this.options.sink.published()
    return outcome
  }

  private async publishWith(target: PublishTarget, envelope: EventEnvelope, publisherId: boolean, question: string): Promise<{ outcome: PublishOutcome; fresh: string[] }> {
    const { config, prefix, presence } = this.options
    const reply = (await this.run(() =>
      this.options.link.eval(
        PUBLISH,
        [],
        [
          prefix,
          presence.instanceId,
          JSON.stringify(envelope),
          envelope.id,
          publisherId ? '1' : '0',
          String(config.history),
          String(config.historyTtlMs),
          question,
          String(config.questionTtlMs),
          String(PRESENCE_WINDOW_MS),
          target === 'connected' ? 'connected' : 'list',
          ...(target === 'connected' ? [] : target),
        ],
      ),
    )) as [number, number, string[]] | ['taken', string, 'held' | 'pending']
    if (reply[0] === 'taken') {
      const quoted = `question ${JSON.stringify(JSON.parse(question).qid)}`
      throw new GatewayError('bad_request', reply[2] === 'held' ? `${quoted} is being answered for ${JSON.stringify(reply[1])} right now` : `${quoted} is already pending for ${JSON.stringify(reply[1])}`)
    }
    const [delivered, targets, fresh] = reply as [number, number, string[]]
    // This instance's own streams get it now; the other instances hear it on the channel.
    this.deliverHere(fresh, envelope)
    return { outcome: { delivered, duplicate: targets > 0 && fresh.length === 0 }, fresh }
  }

  async retainedAfter(clientId: string, lastEventId: string): Promise<Replay> {
    const { link, prefix, config } = this.options
    if (!link.isUp) return { gap: true, events: [] }
    try {
      return await this.inTurn(clientId, () =>
        this.readFramed(this.historyFrames, clientId, async (held) => {
          const [gap, ...flat] = (await link.eval(REPLAY, [`${prefix}history:${clientId}`], [lastEventId, String(config.historyTtlMs), ...held])) as [number, ...string[]]
          return { gap: gap === 1, flat }
        }),
      )
    } catch {
      // Redis went away mid-subscription: the stream still opens, and says it could not replay.
      return { gap: true, events: [] }
    }
  }

  async pendingQuestions(clientId: string): Promise<FramedEvent[]> {
    const { link, prefix } = this.options
    if (!link.isUp) return []
    try {
      const { events } = await this.inTurn(clientId, () =>
        this.readFramed(this.questionFrames, clientId, async (held) => ({
          gap: false,
          flat: (await link.eval(PENDING, [this.indexKey(clientId)], [prefix, clientId, 'pending', ...held])) as string[],
        })),
      )
      // A question's place is its order: the microsecond it was published.
      return events.sort((a, b) => Number(a.place) - Number(b.place))
    } catch {
      return []
    }
  }

  async listQuestions(clientId: string): Promise<QuestionView[]> {
    const flat = (await this.run(() => this.options.link.eval(PENDING, [this.indexKey(clientId)], [this.options.prefix, clientId, 'list']))) as string[]
    const rows: { order: number; view: QuestionView }[] = []
    for (let i = 0; i < flat.length; i += 6) {
      const [order, event, created, deadline, required, count] = flat.slice(i, i + 6) as [string, string, string, string, string, string]
      const view = questionView(JSON.parse(event) as EventEnvelope, Number(created), deadline === '' ? null : Number(deadline), required === '' ? null : Number(required), Number(count))
      rows.push({ order: Number(order), view })
    }
    return rows.sort((a, b) => a.order - b.order).map((row) => row.view)
  }

  async lookupQuestion(clientId: string, questionId: string): Promise<QuestionLookup> {
    const [kind, schema] = (await this.run(() => this.options.link.eval(LOOKUP, [], [this.options.prefix, clientId, questionId, '']))) as [QuestionLookup['kind'], string?]
    if (kind !== 'pending') return { kind }
    return { kind, schema: schema === undefined || schema === '' ? null : (JSON.parse(schema) as object) }
  }

  async answer(clientId: string, questionId: string, answer: RecordedAnswer): Promise<AnswerOutcome> {
    const { prefix } = this.options
    const hold = crypto.randomUUID()
    const reply = (await this.run(() =>
      this.options.link.eval(
        ANSWER,
        [],
        [
          prefix,
          clientId,
          questionId,
          answer.subject ?? '',
          JSON.stringify(answer),
          hold,
          String(this.options.leaseMs()),
          ...this.announcing(),
        ],
      ),
    )) as [string, ...(string | number)[]]
    switch (reply[0]) {
      case 'recorded':
        return { kind: 'recorded', recorded: Number(reply[1]), required: Number(reply[2]) }
      case 'forward':
        return { kind: 'forward', hold, approvals: Number(reply[2]) === 1, responses: JSON.parse(String(reply[1])) as RecordedAnswer[] }
      default:
        return { kind: reply[0] as 'unknown' | 'answered' | 'closed' }
    }
  }

  async settle(clientId: string, questionId: string, hold: Hold, delivered: boolean): Promise<void> {
    const { prefix } = this.options
    const reply = (await this.run(() =>
      this.options.link.eval(
        SETTLE,
        [],
        [
          prefix,
          clientId,
          questionId,
          hold,
          delivered ? '1' : '0',
          '',
          ...this.announcing(),
        ],
      ),
    )) as string[]
    this.reportClosures(reply.length === 5 ? reply : [])
  }

  async cancel(clientId: string, questionId: string): Promise<CancelOutcome> {
    const { prefix } = this.options
    const reply = (await this.run(() =>
      this.options.link.eval(
        CANCEL,
        [],
        [
          prefix,
          clientId,
          questionId,
          ...this.announcing(),
        ],
      ),
    )) as string[]
    if (reply.length === 1) return reply[0] as CancelOutcome
    this.reportClosures(reply)
    return 'cancelled'
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.expiryTimer)
    await this.options.presence.leave()
    this.options.link.close()
  }

  /**
   * One pass: the deadlines due expire (each by exactly one gateway: the script that takes it
   * removes it), then the expiries due are claimed and POSTed to `hitl`. A claim lapses after
   * its lease, so a gateway that dies mid-delivery leaves it to another.
   */
  private async expireAndDeliver(): Promise<void> {
    if (this.expiring || this.closed || !this.options.link.isUp) return
    this.expiring = true
    try {
      const { prefix } = this.options
      for (;;) {
        const flat = (await this.options.link.eval(EXPIRE_DUE, [], [prefix, String(EXPIRE_BATCH), ...this.announcing()])) as string[]
        this.reportClosures(flat)
        // Deliveries start while later batches expire: the first reach hitl without waiting for the last.
        await this.claimDeliveries()
        if (flat.length < EXPIRE_BATCH * 5) break
      }
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'Question deadlines could not be checked; trying again shortly')
    } finally {
      this.expiring = false
    }
  }

  /** Claims as many expiries as there are free delivery slots here, and starts them. */
  private async claimDeliveries(): Promise<void> {
    const free = DELIVERY_CONCURRENCY - this.deliveriesInFlight
    if (free <= 0 || this.closed) return
    const flat = (await this.options.link.eval(CLAIM_DELIVERIES, [], [this.options.prefix, String(free), String(this.options.leaseMs())])) as string[]
    for (let i = 0; i < flat.length; i += 6) {
      const [id, key, questionId, body, attempts, giveUp] = flat.slice(i, i + 6) as [string, string, string, string, string, string]
      void this.deliverOne(id, { key, questionId, body: JSON.parse(body) as Record<string, unknown>, giveUpAt: Number(giveUp) }, Number(attempts))
    }
  }

  private async deliverOne(id: string, delivery: ExpiryDelivery, attempts: number): Promise<void> {
    this.deliveriesInFlight++
    try {
      const attempt = await this.options.deliver(delivery)
      const retry = attempt === 'retry'
      const outcome = await this.options.link.eval(DELIVERED, [], [this.options.prefix, id, retry ? 'retry' : 'done', String(retryDelayMs(attempts + 1))])
      if (outcome === 'gave_up') this.options.gaveUp(delivery)
    } catch (error) {
      // Its claim lapses and the delivery is tried again, here or on another gateway.
      this.options.logger.warn({ question_id: delivery.questionId, err: (error as Error).message }, 'Question expiry delivery not recorded; it will be tried again')
    } finally {
      this.deliveriesInFlight--
    }
    // A slot is free: ten thousand expiries due at once go out at the pace hitl takes them, not one batch per tick.
    if (!this.expiring && this.options.link.isUp) {
      this.expiring = true
      await this.claimDeliveries()
        .catch(() => {})
        .finally(() => {
          this.expiring = false
        })
    }
  }

  /** Closures returned by a script, five values each: told to the sink (audit line, metrics). */
  private reportClosures(flat: readonly string[]): void {
    const now = Date.now()
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const [outcome, questionId, targets, recorded, created] = flat.slice(i, i + 5) as [QuestionOutcome, string, string, string, string]
      const answers = JSON.parse(recorded) as RecordedAnswer[]
      this.options.sink.closed({
        outcome,
        questionId,
        clientIds: JSON.parse(targets) as string[],
        subjects: answers.flatMap((answer) => (answer.subject === null ? [] : [answer.subject])),
        openMs: Math.max(0, now - Number(created)),
      })
    }
  }

  /**
   * The ARGV tail of every script that announces a question's event (events/redis-scripts.ts):
   * a fresh event id, the timestamp, SSE_HISTORY, SSE_HISTORY_TTL_MS, the presence window,
   * QUESTION_TTL_MS.
   */
  private announcing(): string[] {
    const { config } = this.options
    return [Bun.randomUUIDv7(), new Date().toISOString(), String(config.history), String(config.historyTtlMs), String(PRESENCE_WINDOW_MS), String(config.questionTtlMs)]
  }

  private indexKey(clientId: string): string {
    return `${this.options.prefix}qidx:${clientId}`
  }

  /**
   * One read of a client's stored events at a time on this gateway: a stream opening while
   * another's read is under way waits for it, and then asks only for what is not held framed by
   * now. Thirty-two streams opening at once cost Redis one full read, not thirty-two (which
   * Redis would answer only after running them all, stalling the link for everyone). Each read
   * is still sent after its stream was registered, so no live event can slip between the two.
   */
  private inTurn<T>(clientId: string, read: () => Promise<T>): Promise<T> {
    const previous = this.readsInTurn.get(clientId)
    const turn = previous === undefined ? read() : previous.then(read)
    const done = turn.then(
      () => {},
      () => {},
    )
    this.readsInTurn.set(clientId, done)
    void done.then(() => {
      if (this.readsInTurn.get(clientId) === done) this.readsInTurn.delete(clientId)
    })
    return turn
  }

  /**
   * Reads `[place, json, place, json, …]` naming the places held framed here, and frames what
   * came. A held frame collected while the read was under way is read again, whole.
   */
  private async readFramed(frames: SharedFrames, clientId: string, read: (held: string[]) => Promise<StoredRead>): Promise<FramedRead> {
    const framed = framedFrom(frames, clientId, await read(frames.held(clientId)))
    // Nothing named held: every envelope comes, and every place frames.
    return framed ?? framedFrom(frames, clientId, await read([]))!
  }

  /** An event announced on the channel: delivered to this instance's streams of its targets. */
  private relay(message: string): void {
    const firstBreak = message.indexOf('\n')
    const secondBreak = message.indexOf('\n', firstBreak + 1)
    if (firstBreak === -1 || secondBreak === -1) return
    // Published here: already delivered by `publish`.
    if (message.slice(0, firstBreak) === this.options.presence.instanceId) return
    const { metrics, logger } = this.options
    let targets: string[]
    let envelope: EventEnvelope
    try {
      targets = JSON.parse(message.slice(firstBreak + 1, secondBreak)) as string[]
      envelope = JSON.parse(message.slice(secondBreak + 1)) as EventEnvelope
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'Unreadable event on the cluster channel, ignored')
      return
    }
    metrics.clusterEventsRelayed.inc()
    this.deliverHere(targets, envelope)
  }

  /** Queues the event to this instance's streams of `targets`, framing it only if one is here. */
  private deliverHere(targets: readonly string[], envelope: EventEnvelope): void {
    const hub = this.options.hub
    let frame: Uint8Array | undefined
    let delivered = 0
    for (const clientId of targets) {
      if (!hub.hasStreams(clientId)) continue
      frame ??= frameEvent(envelope)
      delivered += hub.deliver(clientId, frame, envelope.id)
    }
    this.options.metrics.sseEventsDelivered.inc(delivered)
  }

  /**
   * A state change that must reach Redis or not happen: refused with 503 at once while Redis is
   * unreachable, so the caller retries instead of trusting a half-done publish.
   */
  private async run(command: () => Promise<unknown>): Promise<unknown> {
    try {
      return await command()
    } catch (error) {
      if (error instanceof RedisUnavailable) throw new GatewayError('service_unavailable', 'the event store (Redis) is unreachable; retry shortly')
      if (error instanceof RedisTimeout) {
        throw new GatewayError('service_unavailable', 'the event store (Redis) did not answer in time and the request may have taken effect; retry with the same id')
      }
      this.options.logger.error({ err: (error as Error).message }, 'Redis refused an event-store command')
      throw new GatewayError('service_unavailable', 'the event store (Redis) refused the command; retry shortly')
    }
  }
}

/** What a read of stored events returns: the replay's gap flag, and `[place, json, …]`. */
interface StoredRead {
  gap: boolean
  flat: string[]
}

interface FramedRead {
  gap: boolean
  events: (FramedEvent & { place: string })[]
}

/** The events of a read, framed; undefined when a held one was collected before it came. */
function framedFrom(frames: SharedFrames, clientId: string, { gap, flat }: StoredRead): FramedRead | undefined {
  const events: (FramedEvent & { place: string })[] = []
  for (let i = 0; i < flat.length; i += 2) {
    const place = flat[i]!
    const framed = frames.framed(clientId, place, flat[i + 1]!)
    if (framed === undefined) return undefined
    events.push({ ...framed, place })
  }
  return { gap, events }
}
