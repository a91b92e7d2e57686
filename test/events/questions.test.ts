import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { envelopeOf, openStream, publish } from '../helpers/sse-client'

let hitl: MockBackend
let gw: RunningGateway
/** What the mock hitl service answers next. */
let hitlReply: { status: number; delayMs: number } = { status: 200, delayMs: 0 }

beforeAll(async () => {
  hitl = startBackend(async () => {
    await Bun.sleep(hitlReply.delayMs)
    return Response.json({ recorded: true }, { status: hitlReply.status })
  })
  gw = await startGateway({ HITL_URL: `${hitl.url}/hitl`, HITL_RESPONSE_PATH: '/questions/{question_id}/answer', RATE_LIMIT: '0' })
})
afterAll(async () => {
  await gw.stop()
  hitl.stop()
})
beforeEach(() => {
  hitlReply = { status: 200, delayMs: 0 }
})

const ask = (clientId: string, questionId: string, extra: Record<string, unknown> = {}) =>
  publish(gw.url, clientId, { event_type: 'question', data: { question_id: questionId, prompt: 'Deploy?', ...extra } })

const answer = (clientId: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${gw.url}/api/v1/events/${clientId}/response`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

describe('pending questions', () => {
  test('a question asked while the client was away is sent on every new connection', async () => {
    const asked = await ask('away', 'q-away')
    for (let tab = 0; tab < 2; tab++) {
      const stream = await openStream(`${gw.url}/api/v1/events/away`)
      const question = await stream.waitFor((e) => e.event === 'question')
      expect(question.id).toBe(asked.body.id)
      expect(question.data.data.question_id).toBe('q-away')
      stream.close()
    }
  })

  test('a question is not sent twice when the replay already carried it', async () => {
    await ask('replayer', 'q-replay')
    const stream = await openStream(`${gw.url}/api/v1/events/replayer?lastEventId=0`)
    await stream.waitFor((e) => e.event === 'question')
    await publish(gw.url, 'replayer', { event_type: 'marker', data: {} })
    await stream.waitFor((e) => e.event === 'marker')
    expect(stream.events.filter((e) => e.event === 'question')).toHaveLength(1)
    stream.close()
  })
})

describe('answers', () => {
  test('forwarded to the hitl service with client_id, Idempotency-Key and X-Request-Id; question.answered reaches every tab', async () => {
    await ask('alice', 'q-1')
    const tabs = await Promise.all([1, 2].map(() => openStream(`${gw.url}/api/v1/events/alice`)))
    await Promise.all(tabs.map((t) => t.waitFor((e) => e.event === 'question')))
    const before = hitl.seen.length
    const response = await answer('alice', { question_id: 'q-1', response: { approved: true }, note: 'lgtm' }, { 'x-request-id': 'answer-req-1' })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ recorded: true })
    expect(hitl.seen.length).toBe(before + 1)
    const call = hitl.seen[before]!
    expect(call.method).toBe('POST')
    expect(call.target).toBe('/hitl/questions/q-1/answer')
    expect(call.headers.get('idempotency-key')).toBe('alice:q-1')
    expect(call.headers.get('x-request-id')).toBe('answer-req-1')
    expect(JSON.parse(call.body)).toEqual({ question_id: 'q-1', response: { approved: true }, note: 'lgtm', client_id: 'alice', status: 'answered', subject: null })
    for (const tab of tabs) {
      const answered = await tab.waitFor((e) => e.event === 'question.answered')
      expect(answered.data.data).toEqual({ question_id: 'q-1' })
      expect(answered.id).toBeDefined()
      tab.close()
    }
    // Answered: no longer pending for new connections, and a second answer is a conflict.
    const later = await openStream(`${gw.url}/api/v1/events/alice`)
    await later.waitFor((e) => e.event === 'connection.established')
    await publish(gw.url, 'alice', { event_type: 'marker', data: {} })
    await later.waitFor((e) => e.event === 'marker')
    expect(later.events.some((e) => e.event === 'question')).toBe(false)
    later.close()
    const again = await answer('alice', { question_id: 'q-1', response: { approved: false } })
    expect(again.status).toBe(409)
    expect((await again.json()).error).toBe('already_answered')
  })

  test('two answers at the same moment: one success, one 409, exactly one call to the hitl service', async () => {
    await ask('racer', 'q-race')
    hitlReply = { status: 201, delayMs: 150 }
    const before = hitl.seen.length
    const [first, second] = await Promise.all([
      answer('racer', { question_id: 'q-race', response: 'tab 1' }),
      answer('racer', { question_id: 'q-race', response: 'tab 2' }),
    ])
    expect([first!.status, second!.status].sort()).toEqual([201, 409])
    expect(hitl.seen.length).toBe(before + 1)
  })

  test('an unknown question → 404 unknown_question, without calling the hitl service', async () => {
    const before = hitl.seen.length
    const response = await answer('alice', { question_id: 'never-asked', response: 1 })
    expect(response.status).toBe(404)
    expect((await response.json()).error).toBe('unknown_question')
    expect(hitl.seen.length).toBe(before)
  })

  test("another client's question is unknown to this client", async () => {
    await ask('owner', 'q-private')
    const response = await answer('intruder', { question_id: 'q-private', response: 1 })
    expect(response.status).toBe(404)
  })

  test('an expired question → 404 (data.expires_at)', async () => {
    await ask('late', 'q-expired', { expires_at: new Date(Date.now() + 100).toISOString() })
    await Bun.sleep(150)
    const response = await answer('late', { question_id: 'q-expired', response: 1 })
    expect(response.status).toBe(404)
    const stream = await openStream(`${gw.url}/api/v1/events/late`)
    await stream.waitFor((e) => e.event === 'connection.established')
    await publish(gw.url, 'late', { event_type: 'marker', data: {} })
    await stream.waitFor((e) => e.event === 'marker')
    expect(stream.events.some((e) => e.event === 'question')).toBe(false)
    stream.close()
  })

  test('an expired question → 404 (QUESTION_TTL_MS)', async () => {
    const short = await startGateway({ HITL_URL: hitl.url, QUESTION_TTL_MS: '100' })
    try {
      await publish(short.url, 'ttl', { event_type: 'question', data: { question_id: 'q-ttl' } })
      await Bun.sleep(150)
      const response = await fetch(`${short.url}/api/v1/events/ttl/response`, { method: 'POST', body: JSON.stringify({ question_id: 'q-ttl', response: 1 }) })
      expect(response.status).toBe(404)
    } finally {
      await short.stop()
    }
  })

  test("the hitl service's error is returned and the question stays pending", async () => {
    await ask('retry', 'q-retry')
    hitlReply = { status: 503, delayMs: 0 }
    const failed = await answer('retry', { question_id: 'q-retry', response: 'yes' })
    expect(failed.status).toBe(503)
    expect(await failed.json()).toEqual({ recorded: true })
    const stream = await openStream(`${gw.url}/api/v1/events/retry`)
    expect((await stream.waitFor((e) => e.event === 'question')).data.data.question_id).toBe('q-retry')
    hitlReply = { status: 200, delayMs: 0 }
    const succeeded = await answer('retry', { question_id: 'q-retry', response: 'yes' })
    expect(succeeded.status).toBe(200)
    await stream.waitFor((e) => e.event === 'question.answered')
    stream.close()
  })

  test('an unreachable hitl service → 502 and the question stays pending', async () => {
    const broken = await startGateway({ HITL_URL: `http://127.0.0.1:${await closedPort()}` })
    try {
      await publish(broken.url, 'stranded', { event_type: 'question', data: { question_id: 'q-s' } })
      const response = await fetch(`${broken.url}/api/v1/events/stranded/response`, { method: 'POST', body: JSON.stringify({ question_id: 'q-s', response: 1 }) })
      expect(response.status).toBe(502)
      expect((await response.json()).error).toBe('bad_gateway')
      expect((await broken.gateway.broker.pendingQuestions('stranded')).map((q) => envelopeOf(q).data.question_id)).toEqual(['q-s'])
    } finally {
      await broken.stop()
    }
  })
})

test('a question id of . or .. is never accepted, so no answer can be forwarded outside HITL_RESPONSE_PATH', async () => {
  const before = hitl.seen.length
  for (const questionId of ['.', '..']) {
    // /hitl/questions/../answer would reach /hitl/answer on the hitl service.
    expect((await ask('dots', questionId)).status).toBe(400)
    const response = await answer('dots', { question_id: questionId, response: 'yes' })
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe('bad_request')
  }
  expect(hitl.seen.length).toBe(before)
})

describe('bad answers get a JSON 400', () => {
  const cases: [string, string][] = [
    ['not JSON', 'question_id=q'],
    ['question_id missing', JSON.stringify({ response: 1 })],
    ['question_id not a string', JSON.stringify({ question_id: 7, response: 1 })],
    ['response missing', JSON.stringify({ question_id: 'q' })],
    ['an array', JSON.stringify([{ question_id: 'q', response: 1 }])],
  ]
  for (const [name, body] of cases) {
    test(name, async () => {
      const response = await fetch(`${gw.url}/api/v1/events/alice/response`, { method: 'POST', body })
      expect(response.status).toBe(400)
      expect((await response.json()).error).toBe('bad_request')
    })
  }
})
