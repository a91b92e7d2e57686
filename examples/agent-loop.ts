/**
 * An agent loop that asks a person before it acts, through api-gateway (README, "Questions").
 *
 * The agent works through its plan, publishing `run.progress` to the person's stream; before
 * the step that changes something it publishes a `question` with a `response_schema`, a
 * deadline and a `default_response`, then waits for the gateway to POST the outcome to it (it
 * is the gateway's `hitl` service): the person's checked answer, or, at the deadline, the
 * default. Then it resumes with the decision. This is LangGraph's `interrupt()` /
 * `Command(resume=…)` or an OpenAI Agents SDK approval, with the gateway carrying the question.
 *
 *   HITL_URL=http://127.0.0.1:9300 ./start.sh                       # the gateway, on :8080
 *   bun examples/agent-loop.ts                                       # this agent, on :9300
 *   open examples/hitl.html?gateway=http://127.0.0.1:8080&client=alice   # the person
 *
 * Settings: GATEWAY_URL (http://127.0.0.1:8080), CLIENT_ID (alice), AGENT_PORT (9300),
 * PUBLISH_TOKEN (when the gateway has one).
 */

// A module (top-level await below), importing nothing: copy it anywhere.
export {}

const gatewayUrl = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080'
const clientId = process.env.CLIENT_ID ?? 'alice'
const port = Number(process.env.AGENT_PORT ?? 9300)
const publishToken = process.env.PUBLISH_TOKEN ?? ''

/** What the gateway POSTs to its hitl service when a question closes. */
interface Outcome {
  question_id: string
  status: 'answered' | 'expired'
  response?: unknown
  subject?: string | null
}

interface Decision {
  proceed: boolean
  comment?: string
}

/** Questions this agent is waiting on, by id: resolved when the gateway POSTs their outcome. */
const waiting = new Map<string, (outcome: Outcome) => void>()

// The gateway's `hitl` service: it sends each outcome here, with an Idempotency-Key, and again
// if this agent did not answer 2xx; a repeat of one already taken is simply acknowledged.
const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  async fetch(request) {
    if (request.method !== 'POST') return new Response('the gateway POSTs outcomes here', { status: 405 })
    const outcome = (await request.json()) as Outcome
    const resume = waiting.get(outcome.question_id)
    waiting.delete(outcome.question_id)
    resume?.(outcome)
    return Response.json({ ok: true })
  },
})

async function publish(eventType: string, data: Record<string, unknown>): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (publishToken !== '') headers.authorization = `Bearer ${publishToken}`
  const reply = await fetch(`${gatewayUrl}/api/v1/events/${encodeURIComponent(clientId)}`, { method: 'POST', headers, body: JSON.stringify({ event_type: eventType, data }) })
  if (!reply.ok) throw new Error(`publishing ${eventType} failed: ${reply.status} ${await reply.text()}`)
}

/** Asks the person and waits for the outcome: their answer (checked by the gateway against `schema`), or `fallback` at the deadline. */
async function ask<T>(questionId: string, prompt: string, schema: object, fallback: T, deadlineMs: number): Promise<{ answer: T; by: string | null; expired: boolean }> {
  const outcome = new Promise<Outcome>((resolve) => waiting.set(questionId, resolve))
  await publish('question', { question_id: questionId, prompt, response_schema: schema, default_response: fallback, expires_in_ms: deadlineMs })
  const { status, response, subject } = await outcome
  return { answer: (response ?? fallback) as T, by: subject ?? null, expired: status === 'expired' }
}

const runId = crypto.randomUUID().slice(0, 8)
const plan = ['read the repository', 'plan the migration', 'apply the migration']
console.log(`agent ${runId}: working for ${clientId} through ${gatewayUrl}; outcomes reach me on :${server.port}`)

for (const [index, step] of plan.entries()) {
  if (step === 'apply the migration') {
    const { answer, by, expired } = await ask<Decision>(
      `apply-${runId}`,
      `Run ${runId} is about to apply the migration. Proceed?`,
      { type: 'object', properties: { proceed: { type: 'boolean', title: 'Proceed' }, comment: { type: 'string', maxLength: 500 } }, required: ['proceed'], additionalProperties: false },
      { proceed: false, comment: 'no answer in time' },
      Number(process.env.DEADLINE_MS ?? 120_000),
    )
    console.log(`agent ${runId}: ${expired ? 'deadline passed, default' : `answered by ${by ?? 'someone'}`}: ${JSON.stringify(answer)}`)
    if (!answer.proceed) {
      await publish('run.completed', { run_id: runId, outcome: 'stopped', reason: answer.comment ?? null })
      break
    }
  }
  await publish('run.progress', { run_id: runId, step, pct: Math.round(((index + 1) / plan.length) * 100) })
  if (index === plan.length - 1) await publish('run.completed', { run_id: runId, outcome: 'applied' })
}

console.log(`agent ${runId}: done`)
await server.stop()
