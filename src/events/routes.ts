/**
 * The handlers of `/api/v1/events/...` (README, "Event protocol"): subscribe (SSE), publish,
 * broadcast, and answer, list and cancel questions. They talk to a `Broker` for state and to the `Hub` for this
 * process's streams. Who may publish, and whose token may subscribe or answer for a
 * `:client_id`, was settled by the pipeline's authenticate step, as the route table says.
 */
import type { EventsConfig } from '../config/settings'
import { readJsonObject } from '../http/body'
import { GatewayError } from '../http/errors'
import type { CorsPolicy } from '../http/cors'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { clientIdOf } from '../request/client-id'
import type { RequestContext } from '../request/context'
import { applyGatewayHeaders } from '../request/gateway-headers'
import type { Upstream } from '../upstream/upstream'
import type { Broker, FramedEvent } from './broker'
import { problemsOf } from './answer-schemas'
import { MAX_EVENT_BYTES, createEnvelope } from './envelope'
import { forwardAnswer } from './hitl'
import type { Hub } from './hub'
import { type RecordedAnswer, outcomeKey } from './questions'
import { parseAnswer, parsePublish, questionIdOfPath } from './requests'
import { SSE_HEADERS, frameControlEvent } from './sse'

export interface EventsDependencies {
  config: EventsConfig
  broker: Broker
  hub: Hub
  /** The `hitl` service, which receives the answers, as the policies current now define it. */
  hitl: () => Upstream
  logger: Logger
  metrics: Metrics
  /** For the gateway headers of event streams, added before their Response exists. */
  cors: CorsPolicy
}

type EventsHandler = (ctx: RequestContext) => Promise<Response>

/** The handlers of the event routes, by route name (`request/route-table.ts`). */
export function eventsHandlers(deps: EventsDependencies): Record<'subscribe' | 'publish' | 'broadcast' | 'answer' | 'questions' | 'cancel', EventsHandler> {
  return {
    subscribe: (ctx) => subscribe(deps, ctx, clientIdOf(ctx)),
    publish: (ctx) => publish(deps, ctx, clientIdOf(ctx)),
    broadcast: (ctx) => publish(deps, ctx, undefined),
    answer: (ctx) => answer(deps, ctx, clientIdOf(ctx)),
    questions: (ctx) => listQuestions(deps, clientIdOf(ctx)),
    cancel: (ctx) => cancel(deps, ctx, clientIdOf(ctx)),
  }
}

/**
 * Subscribe: established → replay (or gap) → pending questions → live. `HEAD` gets the stream's
 * headers at once, and no stream.
 */
async function subscribe(deps: EventsDependencies, ctx: RequestContext, clientId: string): Promise<Response> {
  const { broker, hub, config } = deps
  const headers = new Headers(SSE_HEADERS)
  if (ctx.method === 'HEAD') {
    applyGatewayHeaders(ctx, headers, deps.cors)
    return new Response(null, { headers })
  }
  // Each stream costs the gateway its queue and its share of a replay: one client cannot open without end.
  if (hub.streamCount(clientId) >= config.maxStreamsPerClient) {
    throw new GatewayError('too_many_streams', `client_id ${JSON.stringify(clientId)} already has ${config.maxStreamsPerClient} open event streams here (SSE_MAX_STREAMS_PER_CLIENT)`)
  }
  const request = ctx.request
  const lastEventId = request.headers.get('last-event-id') ?? new URL(request.url).searchParams.get('lastEventId')
  // Streams live for hours and may be quiet between heartbeats: no idle cut-off.
  ctx.keepOpen()
  const connection = hub.open(clientId, { request_id: ctx.requestId, client_ip: ctx.clientIp, last_event_id: lastEventId ?? undefined })
  // The stream's cancel() is not always called when a client vanishes (elysia#1768): watch the request too.
  if (request.signal.aborted) connection.close('client_closed')
  else request.signal.addEventListener('abort', connection, { once: true })

  connection.sendOpening(frameControlEvent(createEnvelope('connection.established', { client_id: clientId, request_id: ctx.requestId })), false)
  // Each event once: a pending question the replay already carried is not sent again. The
  // frames are the broker's own, shared with every other stream that sends them.
  const sent = new Set<string>()
  const sendOnce = (event: FramedEvent) => {
    if (sent.has(event.id)) return
    connection.sendOpening(event.frame)
    sent.add(event.id)
  }
  if (lastEventId !== null) {
    const replay = await broker.retainedAfter(clientId, lastEventId)
    if (replay.gap) connection.sendOpening(frameControlEvent(createEnvelope('replay.gap', { last_event_id: lastEventId })), false)
    for (const event of replay.events) sendOnce(event)
  }
  for (const question of await broker.pendingQuestions(clientId)) sendOnce(question)
  connection.goLive(sent)
  applyGatewayHeaders(ctx, headers, deps.cors)
  return new Response(connection.stream, { headers })
}

/** Publish: to one client (`clientId`) or the broadcast form; a question also becomes pending. */
async function publish(deps: EventsDependencies, ctx: RequestContext, clientId: string | undefined): Promise<Response> {
  const body = await readJsonObject(ctx.request, MAX_EVENT_BYTES)
  const parsed = parsePublish(body, clientId === undefined, { now: Date.now(), questionTtlMs: deps.config.questionTtlMs })
  const envelope = createEnvelope(parsed.eventType, parsed.data, parsed.id)
  const target = clientId !== undefined ? [clientId] : (parsed.clientIds ?? 'connected')
  const publisherId = parsed.id !== undefined
  const outcome = parsed.question === undefined ? await deps.broker.publish(target, envelope, publisherId) : await deps.broker.ask(target, parsed.question, envelope, publisherId)
  if (!outcome.duplicate) deps.metrics.sseEventsPublished.inc()
  return json(202, { id: envelope.id, delivered: outcome.delivered })
}

/** Fields of an answer that the gateway sets itself (README, "Answer"): what the answerer sent under these names is dropped. */
const GATEWAY_OWNED_FIELDS = ['client_id', 'status', 'subject', 'responses'] as const

/**
 * Answer: checked against the question's schema, then recorded (approvals, more needed) or
 * held and forwarded to `hitl`, whose reply the person gets; on a 2xx the question is answered.
 */
async function answer(deps: EventsDependencies, ctx: RequestContext, clientId: string): Promise<Response> {
  const { config, broker, logger } = deps
  const { questionId, body } = parseAnswer(await readJsonObject(ctx.request, MAX_EVENT_BYTES))
  const lookup = await broker.lookupQuestion(clientId, questionId)
  if (lookup.kind !== 'pending') refuse(lookup.kind, questionId)
  if (lookup.schema !== null) {
    const problems = problemsOf(lookup.schema, body.response)
    if (problems.length > 0) throw new GatewayError('invalid_answer', "the response does not satisfy the question's response_schema", {}, problems)
  }
  const subject = ctx.principal?.subject ?? null
  const recorded: RecordedAnswer = { client_id: clientId, subject, response: body.response, answered_at: new Date().toISOString() }
  const outcome = await broker.answer(clientId, questionId, recorded)
  if (outcome.kind === 'recorded') return json(202, { question_id: questionId, recorded: outcome.recorded, required: outcome.required })
  if (outcome.kind !== 'forward') refuse(outcome.kind, questionId)

  const forwarded = outcome.approvals
    ? { question_id: questionId, status: 'answered', responses: outcome.responses }
    : { ...withoutGatewayFields(body), client_id: clientId, status: 'answered', subject }
  const requestId = ctx.requestId
  const idempotencyKey = outcomeKey(questionId, [clientId], outcome.approvals ? 1 : null)
  let reply: Response
  try {
    reply = await forwardAnswer(deps.hitl(), { responsePath: config.hitlResponsePath, questionId, body: forwarded, idempotencyKey, requestId, subject: subject ?? undefined })
  } catch (error) {
    await broker.settle(clientId, questionId, outcome.hold, false).catch(() => {})
    logger.warn({ client_id: clientId, question_id: questionId, request_id: requestId, err: (error as Error).message }, 'Answer not delivered')
    throw error
  }
  // Decided by the status, before the body: a body that stalls or breaks after a 2xx must not
  // leave the question held, nor let it expire once hitl has taken the answer.
  const accepted = reply.status >= 200 && reply.status < 300
  try {
    await broker.settle(clientId, questionId, outcome.hold, accepted)
  } catch (error) {
    // The hitl service has the answer and its reply is the truth for the person answering. In
    // cluster mode the hold lapses after its lease and the question is pending again; a second
    // answer reaches the service with the same Idempotency-Key.
    logger.error({ client_id: clientId, question_id: questionId, request_id: requestId, err: (error as Error).message }, 'Answer delivered, but not recorded')
  }
  logger.info({ client_id: clientId, question_id: questionId, request_id: requestId, status: reply.status, accepted }, 'Answer forwarded')
  const headers = new Headers()
  const contentType = reply.headers.get('content-type')
  if (contentType !== null) headers.set('content-type', contentType)
  return new Response(reply.body, { status: reply.status, headers })
}

function withoutGatewayFields(body: Record<string, unknown>): Record<string, unknown> {
  const kept = { ...body }
  for (const field of GATEWAY_OWNED_FIELDS) delete kept[field]
  return kept
}

/** A question that cannot take this answer, as the error the answerer gets. */
function refuse(kind: 'unknown' | 'answered' | 'closed', questionId: string): never {
  const quoted = JSON.stringify(questionId)
  if (kind === 'unknown') throw new GatewayError('unknown_question', `no pending question ${quoted} for this client`)
  if (kind === 'closed') throw new GatewayError('question_closed', `question ${quoted} is closed: its deadline passed or it was cancelled`)
  throw new GatewayError('already_answered', `question ${quoted} has already been answered`)
}

/** `GET …/questions`: the client's pending questions, oldest first. */
async function listQuestions(deps: EventsDependencies, clientId: string): Promise<Response> {
  return json(200, { questions: await deps.broker.listQuestions(clientId) })
}

/** How often a cancellation looks again at a question held by an answer being forwarded. */
const HELD_POLL_MS = 50

/**
 * `DELETE …/questions/<question_id>`: closed for every client it was pending for. A question
 * held by an answer being forwarded waits for that forward: cancelled if it fails, 409 if not.
 */
async function cancel(deps: EventsDependencies, ctx: RequestContext, clientId: string): Promise<Response> {
  const questionId = questionIdOfPath(ctx.url.slice(ctx.questionStart, ctx.questionEnd))
  let outcome = await deps.broker.cancel(clientId, questionId)
  while (outcome === 'held') {
    await Bun.sleep(HELD_POLL_MS)
    outcome = await deps.broker.cancel(clientId, questionId)
  }
  if (outcome !== 'cancelled') refuse(outcome, questionId)
  return new Response(null, { status: 204 })
}

function json(status: number, body: object): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}
