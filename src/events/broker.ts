/**
 * The seam between the event routes and the state behind them (README, "Event protocol"). The
 * in-memory broker is the embedded default; a broker shared by several gateway instances
 * implements the same interface, and neither the routes nor the connections know which one is
 * behind them.
 *
 * The contract holds for one process and for many sharing one store alike:
 * - `publish` reaches every stream of each target once, on whichever instance it is open.
 * - The target `'connected'` means every client with a stream open on any live instance at the
 *   moment the event is accepted. An instance that died stops counting within 30 s.
 * - `delivered` counts the streams open for the targets, across all instances, when the event
 *   was accepted: with one process, the streams it queued the event to.
 * - History, questions and publisher ids are shared state: a replay, an answer or an
 *   idempotent retry gives the same answer on every instance, and each transition of a
 *   question (events/questions.ts) is decided once, atomically by the store.
 */
import type { EventEnvelope } from './envelope'
import type { DeliveryAttempt } from './hitl'
import type { AnswerOutcome, CancelOutcome, ExpiryDelivery, Hold, QuestionLookup, QuestionSink, QuestionSpec, QuestionView, RecordedAnswer } from './questions'

/** What a broker is given to reach beyond itself with questions: the audit, and `hitl` for expiries. */
export interface QuestionHooks {
  sink: QuestionSink
  /** One attempt to POST an expiry to `hitl`. */
  deliver: (delivery: ExpiryDelivery) => Promise<DeliveryAttempt>
  /** Told of an expiry given up on. */
  gaveUp: (delivery: ExpiryDelivery) => void
}

/** Who a published event is for: named clients, or every client with an open stream right now (see above). */
export type PublishTarget = readonly string[] | 'connected'

export interface PublishOutcome {
  /** Streams open for the targets when the event was accepted (see above). */
  delivered: number
  /** True when every target already retained this id: the publish was a no-op. */
  duplicate: boolean
}

/**
 * A retained event as streams send it: framed once, and the same bytes queued to every stream
 * that sends it, so a thousand streams replaying one history hold one copy of it, not a
 * thousand (README, "Subscribe").
 */
export interface FramedEvent {
  id: string
  frame: Uint8Array
}

export interface Replay {
  /** The requested id is no longer retained: the client missed events that are gone. */
  gap: boolean
  /** Retained events after the requested id (all of them after a gap or for `0`), oldest first. */
  events: FramedEvent[]
}

export interface Broker {
  /**
   * Retains the event for each target and queues it to their streams. `publisherId`: the id
   * came from the publisher, so a retry may repeat it and a target that already retains it is
   * skipped.
   */
  publish(target: PublishTarget, envelope: EventEnvelope, publisherId?: boolean): Promise<PublishOutcome>
  /**
   * Publishes a question (README, "Questions"): retained and queued like any event, and pending
   * for its targets: one question shared by the approvers when `required` is set, else one per
   * target.
   * @throws GatewayError `bad_request` when an approval's question id is pending for one of them already.
   */
  ask(target: PublishTarget, question: Omit<QuestionSpec, 'clientIds'>, envelope: EventEnvelope, publisherId?: boolean): Promise<PublishOutcome>
  /** Step 2 of a subscription: what a client with `lastEventId` missed. */
  retainedAfter(clientId: string, lastEventId: string): Promise<Replay>
  /** Step 3 of a subscription: the questions pending for the client, oldest first. */
  pendingQuestions(clientId: string): Promise<FramedEvent[]>
  /** `GET …/questions`: the same questions, as views. */
  listQuestions(clientId: string): Promise<QuestionView[]>
  /** Where a question stands for a client, and the schema an answer must pass. */
  lookupQuestion(clientId: string, questionId: string): Promise<QuestionLookup>
  /**
   * An answer (README, "Answer", "Questions"): recorded (approvals, more needed), or held for
   * this caller to forward to `hitl` (then `settle`), or refused as it stands. Decided once,
   * whatever the number of gateways.
   */
  answer(clientId: string, questionId: string, answer: RecordedAnswer): Promise<AnswerOutcome>
  /** Ends a hold: delivered, the question is answered and `question.answered` sent; else pending again. */
  settle(clientId: string, questionId: string, hold: Hold, delivered: boolean): Promise<void>
  /** `DELETE …/questions/<id>`: closed for every client, `question.cancelled` sent; `held` while an answer is being forwarded. */
  cancel(clientId: string, questionId: string): Promise<CancelOutcome>
  /** Stops: timers end, and a shared broker leaves the cluster's presence. */
  close(): void | Promise<void>
}
