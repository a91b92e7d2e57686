/**
 * The cluster broker (README, "Cluster mode"): history, pending questions, answered markers and
 * publisher ids live in Redis, so every gateway sharing it gives the same answers; each publish
 * is one atomic script that retains the event, counts the streams across the cluster and
 * announces it on one channel, from which every other instance delivers it to its own streams.
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
import type { AnswerClaim, Broker, FramedEvent, PublishOutcome, PublishTarget, Replay } from './broker'
import { type EventEnvelope, QUESTION_EVENT_TYPE } from './envelope'
import type { Hub } from './hub'
import { CLAIM, PENDING, PUBLISH, REPLAY, SETTLE } from './redis-scripts'
import { SharedFrames } from './shared-frames'
import { frameEvent } from './sse'

export interface RedisBrokerOptions {
  hub: Hub
  config: EventsConfig
  link: RedisLink
  presence: Presence
  prefix: string
  metrics: Metrics
  logger: Logger
  /**
   * How long a claimed answer stays claimed if its gateway dies before settling it: the time
   * the hitl service may take, and a margin.
   */
  claimLeaseMs: number
}

export class RedisBroker implements Broker {
  private readonly channel: string
  /**
   * The token of each claim this instance holds, until settled: a settle only counts if the claim
   * is still ours (a lease that lapsed may have let another instance claim the question).
   */
  private readonly claims = new Map<string, string>()
  /** What streams replay from Redis, framed once however many streams send it. */
  private readonly historyFrames = new SharedFrames()
  private readonly questionFrames = new SharedFrames()
  /** Per client, the read of its stored events under way here (see `inTurn`). */
  private readonly readsInTurn = new Map<string, Promise<void>>()

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
  }

  async publish(target: PublishTarget, envelope: EventEnvelope, publisherId = false): Promise<PublishOutcome> {
    const { config, prefix, presence } = this.options
    const question = envelope.event_type === QUESTION_EVENT_TYPE ? (envelope.data as { question_id: string; expires_at?: string }) : undefined
    const expiresAt = question?.expires_at === undefined ? '' : String(Date.parse(question.expires_at))
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
          question?.question_id ?? '',
          expiresAt,
          String(config.questionTtlMs),
          String(PRESENCE_WINDOW_MS),
          target === 'connected' ? 'connected' : 'list',
          ...(target === 'connected' ? [] : target),
        ],
      ),
    )) as [number, number, string[]]
    const [delivered, targets, fresh] = reply
    // This instance's own streams get it now; the other instances hear it on the channel.
    this.deliverHere(fresh, envelope)
    return { delivered, duplicate: targets > 0 && fresh.length === 0 }
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
        this.readFramed(this.questionFrames, clientId, async (held) => ({ gap: false, flat: (await link.eval(PENDING, [`${prefix}questions:${clientId}`], held)) as string[] })),
      )
      // A question's place is its order: the microsecond it was published.
      return events.sort((a, b) => Number(a.place) - Number(b.place))
    } catch {
      return []
    }
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

  async claimAnswer(clientId: string, questionId: string): Promise<AnswerClaim> {
    const keys = this.questionKeys(clientId)
    const token = crypto.randomUUID()
    const claim = (await this.run(() => this.options.link.eval(CLAIM, keys, [questionId, String(this.options.claimLeaseMs), token]))) as AnswerClaim
    if (claim === 'claimed') this.claims.set(claimKey(clientId, questionId), token)
    return claim
  }

  async settleAnswer(clientId: string, questionId: string, answered: boolean): Promise<void> {
    const keys = this.questionKeys(clientId)
    const key = claimKey(clientId, questionId)
    const token = this.claims.get(key)
    this.claims.delete(key)
    // Not claimed here: nothing of ours to settle.
    if (token === undefined) return
    await this.run(() => this.options.link.eval(SETTLE, keys, [questionId, answered ? '1' : '0', String(this.options.config.questionTtlMs), token]))
  }

  async close(): Promise<void> {
    await this.options.presence.leave()
    this.options.link.close()
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

  private questionKeys(clientId: string): string[] {
    const prefix = this.options.prefix
    return [`${prefix}questions:${clientId}`, `${prefix}answered:${clientId}`]
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

const claimKey = (clientId: string, questionId: string) => `${clientId}\n${questionId}`

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
