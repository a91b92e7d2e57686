/**
 * The demo's `agent` service (README, "Demo"), which is also its `hitl` service: what an agent
 * built on the gateway does. `POST /runs {"client_id"}` starts a run that publishes a few
 * `run.progress` events to that client, then asks a question with a `response_schema`, a
 * deadline and a default; when the gateway POSTs the outcome to `HITL_RESPONSE_PATH` (the answer, or
 * the expiry with the default), the run publishes `run.completed` with it. Written with Elysia,
 * as a backend behind the gateway would be: its TypeBox schema checks what a run is started with.
 */
import { Elysia, t } from 'elysia'
import { AnswerPaths } from '../request/answer-paths'

/** The question every run asks. */
export const DEPLOY_QUESTION_SCHEMA = {
  type: 'object',
  properties: {
    approve: { type: 'boolean', title: 'Approve the deploy' },
    environment: { enum: ['staging', 'production'], title: 'Environment' },
    note: { type: 'string', maxLength: 200, title: 'Note' },
  },
  required: ['approve', 'environment'],
  additionalProperties: false,
} as const

/** How long a person has to answer; then the run goes on with the default. */
const QUESTION_DEADLINE_MS = 5 * 60_000
const DEFAULT_RESPONSE = { approve: false, environment: 'staging' }
/** Time between a run's steps, so a person sees them arrive. */
const STEP_MS = 300
/** Runs remembered (waiting for their answer); the oldest is forgotten beyond this. */
const MAX_RUNS = 1_000

const CLIENT_ID_RULE = 'client_id must be 1-128 characters of [A-Za-z0-9._:-]'

interface Run {
  runId: string
  clientId: string
}

/** What the gateway POSTs when a question closes. */
interface QuestionOutcome {
  question_id?: string
  status?: string
  response?: unknown
  subject?: string | null
}

export interface AgentService {
  url: string
  stop(): void
  /** Where the run's events are published once the gateway listens, and where outcomes come (`HITL_RESPONSE_PATH`). */
  connect(gatewayUrl: string, publishToken: string, responsePath: string): void
}

/** @example const agent = startAgentService(); ...; agent.connect('http://127.0.0.1:8080', '') */
export function startAgentService(log: (message: string, fields: object) => void): AgentService {
  const runs = new Map<string, Run>()
  let gateway: { url: string; publishToken: string; outcomes: AnswerPaths } | undefined

  const publish = async (clientId: string, eventType: string, data: object) => {
    if (gateway === undefined) return
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (gateway.publishToken !== '') headers.authorization = `Bearer ${gateway.publishToken}`
    const reply = await fetch(`${gateway.url}/api/v1/events/${encodeURIComponent(clientId)}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ event_type: eventType, data }),
      // The demo's gateway may serve HTTPS with a certificate for another name: this call goes to it alone.
      tls: { rejectUnauthorized: false },
    }).catch((error: Error) => error)
    if (reply instanceof Error || !reply.ok) log('Demo agent could not publish', { event_type: eventType, error: reply instanceof Error ? reply.message : reply.status })
  }

  const run = async ({ runId, clientId }: Run) => {
    await publish(clientId, 'run.started', { run_id: runId })
    for (const pct of [25, 50, 75]) {
      await Bun.sleep(STEP_MS)
      await publish(clientId, 'run.progress', { run_id: runId, pct, step: `step ${pct / 25} of 3` })
    }
    await Bun.sleep(STEP_MS)
    await publish(clientId, 'question', {
      question_id: `deploy-${runId}`,
      run_id: runId,
      prompt: `Run ${runId} is ready to deploy. Go ahead?`,
      response_schema: DEPLOY_QUESTION_SCHEMA,
      expires_in_ms: QUESTION_DEADLINE_MS,
      default_response: DEFAULT_RESPONSE,
    })
  }

  const startRun = (clientId: string) => {
    const started: Run = { runId: crypto.randomUUID().slice(0, 8), clientId }
    runs.set(`deploy-${started.runId}`, started)
    if (runs.size > MAX_RUNS) runs.delete(runs.keys().next().value!)
    void run(started)
    return { run_id: started.runId, client_id: clientId }
  }

  /** The gateway's POST of a question's outcome: an answer, or its expiry with the default. */
  const outcome = async (body: QuestionOutcome | null) => {
    const waiting = body?.question_id === undefined ? undefined : runs.get(body.question_id)
    // Unknown (a retry of one already completed, or a run from before a restart): nothing more to do.
    if (body === null || waiting === undefined) return { ok: true, known: false }
    runs.delete(body.question_id!)
    const expired = body.status === 'expired'
    await publish(waiting.clientId, 'run.completed', { run_id: waiting.runId, outcome: body.response ?? null, expired, decided_by: expired ? null : (body.subject ?? null) })
    return { ok: true, run_id: waiting.runId }
  }

  const app = new Elysia()
    .onError(({ code, set }) => {
      if (code === 'VALIDATION') {
        set.status = 400
        return { error: 'bad_request', message: CLIENT_ID_RULE }
      }
      if (code === 'NOT_FOUND') {
        set.status = 404
        return { error: 'not_found', message: 'the demo agent answers POST /runs {"client_id"}' }
      }
    })
    .post(
      '/runs',
      ({ body, set }) => {
        set.status = 202
        return startRun(body.client_id)
      },
      { body: t.Object({ client_id: t.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$' }) }) },
    )
    // HITL_RESPONSE_PATH, which the gateway keeps from the proxy: only the gateway sends outcomes.
    .post('/*', ({ body, path, set }) => {
      if (gateway === undefined || !gateway.outcomes.covers(path)) {
        set.status = 404
        return { error: 'not_found', message: 'the demo agent answers POST /runs {"client_id"}' }
      }
      return outcome((body ?? null) as QuestionOutcome | null)
    })
    .listen({ hostname: '127.0.0.1', port: 0 })

  return {
    url: `http://127.0.0.1:${app.server!.port}`,
    stop: () => void app.stop(true),
    connect(url, publishToken, responsePath) {
      gateway = { url, publishToken, outcomes: new AnswerPaths(responsePath) }
    },
  }
}
