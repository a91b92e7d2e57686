/**
 * The event as every stream, history and publisher sees it (README, "Event protocol"), and the rules for the
 * fields publishers choose.
 */

/** What `data:` carries on the wire. */
export interface EventEnvelope {
  id: string
  event_type: string
  /** ISO-8601 UTC. */
  timestamp: string
  data: unknown
}

/** Control events the gateway itself emits; publishers may not use them. */
export const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set(['connection.established', 'heartbeat', 'replay.gap'])

/** Event types: 1–64 characters of `[A-Za-z0-9._:-]`. */
export const EVENT_TYPE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/


/** The largest event a publisher may send. */
export const MAX_EVENT_BYTES = 64 * 1024

export const QUESTION_EVENT_TYPE = 'question'

/**
 * A new envelope stamped now; `id` defaults to a time-ordered UUIDv7.
 * @example createEnvelope('run.progress', { pct: 40 }).event_type // 'run.progress'
 */
export function createEnvelope(eventType: string, data: unknown, id: string = Bun.randomUUIDv7()): EventEnvelope {
  return { id, event_type: eventType, timestamp: new Date().toISOString(), data }
}
