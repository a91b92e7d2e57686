/** A recording `hitl` service that fails on demand: what the question tests check the gateway against. */
import { type MockBackend, type SeenRequest, startBackend } from './backend'

export interface RecordingHitl extends MockBackend {
  /** The POSTs received, bodies parsed. */
  posts(): { target: string; idempotencyKey: string | null; subject: string | null; body: any }[]
  /** Statuses the next requests get, in order (then 200); `'hang'` never answers, `'stall'` sends 200 and a body that never ends. */
  next: (number | 'hang' | 'stall')[]
  /** Delay before every answer. */
  delayMs: number
}

/** @example const hitl = startRecordingHitl(); hitl.next.push(503) */
export function startRecordingHitl(): RecordingHitl {
  const state = { next: [] as (number | 'hang' | 'stall')[], delayMs: 0 }
  const backend = startBackend(async () => {
    const status = state.next.shift() ?? 200
    if (status === 'hang') return new Promise<Response>(() => {})
    if (status === 'stall') return new Response(new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode('{"recorded":')) }), { headers: { 'content-type': 'application/json' } })
    await Bun.sleep(state.delayMs)
    return Response.json({ recorded: status < 300 }, { status })
  })
  const parse = (seen: SeenRequest) => ({
    target: seen.target,
    idempotencyKey: seen.headers.get('idempotency-key'),
    subject: seen.headers.get('x-auth-subject'),
    body: seen.body === '' ? undefined : JSON.parse(seen.body),
  })
  return {
    ...backend,
    posts: () => backend.seen.filter((seen) => seen.method === 'POST').map(parse),
    get next() {
      return state.next
    },
    set next(value: (number | 'hang' | 'stall')[]) {
      state.next = value
    },
    get delayMs() {
      return state.delayMs
    },
    set delayMs(value: number) {
      state.delayMs = value
    },
  }
}
