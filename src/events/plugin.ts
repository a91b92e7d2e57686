/**
 * `/api/v1/events/...` (SPEC §6): subscribe (SSE), publish, broadcast and answer questions.
 * The routes talk to a `Broker` for state and to the `Hub` for this process's streams.
 */
import { Elysia } from 'elysia'
import type { Config } from '../config'
import type { Admission } from '../http/admission'
import type { IdleTimeoutControl } from '../http/context'
import { readJsonObject } from '../http/body'
import { GatewayError } from '../http/errors'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import type { Broker } from './broker'
import { IDENTIFIER_PATTERN } from '../http/request-id'
import { type EventEnvelope, MAX_EVENT_BYTES, QUESTION_ANSWERED_EVENT_TYPE, createEnvelope } from './envelope'
import { deliverAnswer } from './hitl'
import type { Hub } from './hub'
import type { PublisherAuth } from './publisher-auth'
import { parseAnswer, parsePublish } from './requests'
import { SSE_HEADERS, frameControlEvent, frameEvent } from './sse'

export const EVENTS_PREFIX = '/api/v1/events'

export interface EventsDependencies {
  config: Config
  admission: Admission
  broker: Broker
  hub: Hub
  publisherAuth: PublisherAuth
  logger: Logger
  metrics: Metrics
  /** The server, to lift its idle timeout on event streams. */
  idleTimeouts: IdleTimeoutControl
}

interface RouteContext {
  request: Request
  params: Record<string, string>
}

export function eventsRoutes(deps: EventsDependencies) {
  const notFound = ({ request }: { request: Request }) => {
    throw new GatewayError('not_found', `no events route for ${request.method} ${new URL(request.url).pathname}`)
  }
  return new Elysia({ name: 'events' })
    .get(`${EVENTS_PREFIX}/:client_id`, (c: RouteContext) => subscribe(deps, c.request, validClientId(c.params.client_id)))
    .post(`${EVENTS_PREFIX}/:client_id/response`, (c: RouteContext) => answer(deps, c.request, validClientId(c.params.client_id)), {
      parse: 'none',
    })
    .post(`${EVENTS_PREFIX}/:client_id`, (c: RouteContext) => publish(deps, c.request, validClientId(c.params.client_id)), { parse: 'none' })
    .post(EVENTS_PREFIX, (c: RouteContext) => publish(deps, c.request, undefined), { parse: 'none' })
    .all(EVENTS_PREFIX, notFound, { parse: 'none' })
    .all(`${EVENTS_PREFIX}/*`, notFound, { parse: 'none' })
}

function validClientId(clientId: string | undefined): string {
  if (clientId === undefined || !IDENTIFIER_PATTERN.test(clientId)) {
    throw new GatewayError('bad_request', 'client_id must be 1-128 characters of [A-Za-z0-9._:-]')
  }
  return clientId
}

/** SPEC §6 subscribe: established → replay (or gap) → pending questions → live. */
async function subscribe(deps: EventsDependencies, request: Request, clientId: string): Promise<Response> {
  const { admission, broker, hub } = deps
  const context = admission.contextOf(request)
  const lastEventId = request.headers.get('last-event-id') ?? new URL(request.url).searchParams.get('lastEventId')
  // Streams live for hours and may be quiet between heartbeats: no idle cut-off.
  deps.idleTimeouts.timeout(request, 0)
  const connection = hub.open(clientId, { request_id: context.requestId, client_ip: context.clientIp, last_event_id: lastEventId ?? undefined })
  // The stream's cancel() is not always called when a client vanishes (elysia#1768): watch the request too.
  if (request.signal.aborted) connection.close('client_closed')
  else request.signal.addEventListener('abort', connection, { once: true })

  connection.sendOpening(frameControlEvent(createEnvelope('connection.established', { client_id: clientId, request_id: context.requestId })), false)
  // Each event once: a pending question the replay already carried is not sent again.
  const sent = new Set<string>()
  const sendOnce = (envelope: EventEnvelope) => {
    if (sent.has(envelope.id)) return
    connection.sendOpening(frameEvent(envelope))
    sent.add(envelope.id)
  }
  if (lastEventId !== null) {
    const replay = await broker.retainedAfter(clientId, lastEventId)
    if (replay.gap) connection.sendOpening(frameControlEvent(createEnvelope('replay.gap', { last_event_id: lastEventId })), false)
    for (const envelope of replay.events) sendOnce(envelope)
  }
  for (const question of await broker.pendingQuestions(clientId)) sendOnce(question)
  connection.goLive(sent)
  return new Response(connection.stream, { headers: admission.decorate(request, new Headers(SSE_HEADERS)) })
}

/** SPEC §6 publish: to one client (`clientId`) or the broadcast form. */
async function publish(deps: EventsDependencies, request: Request, clientId: string | undefined): Promise<Response> {
  const { admission, broker, metrics } = deps
  deps.publisherAuth.authorize(request, admission.contextOf(request).clientIp)
  const parsed = parsePublish(await readJsonObject(request, MAX_EVENT_BYTES), clientId === undefined)
  const envelope = createEnvelope(parsed.eventType, parsed.data, parsed.id)
  const target = clientId !== undefined ? [clientId] : (parsed.clientIds ?? 'connected')
  const outcome = await broker.publish(target, envelope, parsed.id !== undefined)
  if (!outcome.duplicate) metrics.sseEventsPublished.inc()
  return json(admission, request, 202, { id: envelope.id, delivered: outcome.delivered })
}

/** SPEC §6 answer: one winner per question, forwarded to the hitl service, then `question.answered`. */
async function answer(deps: EventsDependencies, request: Request, clientId: string): Promise<Response> {
  const { config, admission, broker, logger } = deps
  const { questionId, body } = parseAnswer(await readJsonObject(request, MAX_EVENT_BYTES))
  const claim = await broker.claimAnswer(clientId, questionId)
  if (claim === 'unknown') throw new GatewayError('unknown_question', `no pending question ${JSON.stringify(questionId)} for this client`)
  if (claim === 'answered') throw new GatewayError('already_answered', `question ${JSON.stringify(questionId)} has already been answered`)

  const requestId = admission.contextOf(request).requestId
  let reply: Response
  let replyBody: ArrayBuffer
  try {
    reply = await deliverAnswer({
      hitl: config.services.get('hitl')!,
      responsePath: config.events.hitlResponsePath,
      clientId,
      questionId,
      body,
      requestId,
      timeoutMs: config.upstreamTimeoutMs,
    })
    replyBody = await reply.arrayBuffer()
  } catch (error) {
    await broker.settleAnswer(clientId, questionId, false)
    logger.warn({ client_id: clientId, question_id: questionId, request_id: requestId, err: (error as Error).message }, 'Answer not delivered')
    throw error
  }
  const accepted = reply.status >= 200 && reply.status < 300
  await broker.settleAnswer(clientId, questionId, accepted)
  if (accepted) await broker.publish([clientId], createEnvelope(QUESTION_ANSWERED_EVENT_TYPE, { question_id: questionId }))
  logger.info({ client_id: clientId, question_id: questionId, request_id: requestId, status: reply.status, accepted }, 'Answer forwarded')
  const headers = new Headers()
  const contentType = reply.headers.get('content-type')
  if (contentType !== null) headers.set('content-type', contentType)
  return new Response(replyBody, { status: reply.status, headers: admission.decorate(request, headers) })
}

function json(admission: Admission, request: Request, status: number, body: object): Response {
  return new Response(JSON.stringify(body), { status, headers: admission.decorate(request, new Headers({ 'content-type': 'application/json' })) })
}
