/**
 * The seam between the event routes and the state behind them. The in-memory broker is the
 * embedded default; a Redis broker (cluster mode, SPEC §7) implements the same interface, and
 * neither the routes nor the connections know which one is behind them.
 */
import type { EventEnvelope } from './envelope'

/** Who a published event is for: named clients, or every client connected right now. */
export type PublishTarget = readonly string[] | 'connected'

export interface PublishOutcome {
  /** Streams the event was queued to. */
  delivered: number
  /** True when every target already retained this id: the publish was a no-op. */
  duplicate: boolean
}

export interface Replay {
  /** The requested id is no longer retained: the client missed events that are gone. */
  gap: boolean
  /** Retained events after the requested id (all of them after a gap or for `0`), oldest first. */
  events: EventEnvelope[]
}

/** The outcome of trying to become the one answer to a question. */
export type AnswerClaim = 'claimed' | 'unknown' | 'answered'

export interface Broker {
  /**
   * Retains the event for each target (questions also become pending) and queues it to their
   * streams. `publisherId`: the id came from the publisher, so a retry may repeat it and a
   * target that already retains it is skipped.
   */
  publish(target: PublishTarget, envelope: EventEnvelope, publisherId?: boolean): Promise<PublishOutcome>
  /** SPEC §6 step 2: what a client with `lastEventId` missed. */
  retainedAfter(clientId: string, lastEventId: string): Promise<Replay>
  /** SPEC §6 step 3: the client's unanswered, unexpired questions, oldest first. */
  pendingQuestions(clientId: string): Promise<EventEnvelope[]>
  /**
   * Makes this caller the only one answering `questionId`: `claimed` once; `answered` for every
   * concurrent or later caller; `unknown` when it was never pending here or has expired.
   */
  claimAnswer(clientId: string, questionId: string): Promise<AnswerClaim>
  /** Ends a claim: `answered` retires the question; otherwise it is pending again. */
  settleAnswer(clientId: string, questionId: string, answered: boolean): Promise<void>
  close(): void
}
