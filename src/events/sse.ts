/**
 * Server-Sent Events framing (HTML Living Standard §9.2). Each event is framed once and the same
 * bytes are shared by every stream that receives it.
 */
import type { EventEnvelope } from './envelope'

const encoder = new TextEncoder()

/** The response headers of every event stream (README, "Subscribe"). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  // nginx and similar proxies would otherwise buffer the stream.
  'x-accel-buffering': 'no',
}

/**
 * `id: …\nevent: …\ndata: <envelope JSON>\n\n`. JSON never contains a raw newline, so one
 * `data:` line always suffices.
 * @example frameEvent(createEnvelope('run.progress', {}))
 */
export function frameEvent(envelope: EventEnvelope): Uint8Array {
  return encoder.encode(`id: ${envelope.id}\nevent: ${envelope.event_type}\ndata: ${JSON.stringify(envelope)}\n\n`)
}

/**
 * A control event without an `id:` line, so it never moves the browser's last event id
 * (`connection.established`, `replay.gap`, `heartbeat`).
 */
export function frameControlEvent(envelope: EventEnvelope): Uint8Array {
  return encoder.encode(`event: ${envelope.event_type}\ndata: ${JSON.stringify(envelope)}\n\n`)
}
