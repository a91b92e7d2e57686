/**
 * Questions for agents over HTTP (README, "Questions"): answer schemas, deadlines, approvals,
 * cancellation, listing and the audit, against the compiled binary and a recording hitl
 * service that fails on demand. The state machine itself is tested per broker in
 * question-states.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { buildBinary, startGatewayProcess } from '../helpers/gateway-process'
import { type RecordingHitl, startRecordingHitl } from '../helpers/hitl'
import { openStream, publish } from '../helpers/sse-client'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'
import { waitFor } from '../helpers/wait'

/** `bin/api-gateway` on a free port, stopped with SIGTERM. */
async function startGateway(env: Record<string, string>) {
  const gateway = await startGatewayProcess(env, { binary: true })
  return { url: gateway.url, logs: gateway.logs, stop: () => gateway.kill('SIGTERM') }
}

let hitl: RecordingHitl
let gw: Awaited<ReturnType<typeof startGateway>>

beforeAll(async () => {
  buildBinary()
  hitl = startRecordingHitl()
  gw = await startGateway({ HITL_URL: hitl.url, RATE_LIMIT: '0' })
}, 60_000)
afterAll(async () => {
  await gw.stop()
  hitl.stop()
})
beforeEach(() => {
  hitl.next = []
  hitl.delayMs = 0
})

const APPROVAL_SCHEMA = {
  type: 'object',
  properties: { approved: { type: 'boolean' }, reason: { type: 'string', maxLength: 20 }, env: { enum: ['staging', 'prod'] } },
  required: ['approved'],
  additionalProperties: false,
}

const ask = (url: string, clientId: string, data: Record<string, unknown>, headers: Record<string, string> = {}) =>
  publish(url, clientId, { event_type: 'question', data: { prompt: 'Deploy?', ...data } }, headers)

async function answer(url: string, clientId: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/api/v1/events/${clientId}/response`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: (await response.json()) as any }
}

const cancel = (url: string, clientId: string, questionId: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/api/v1/events/${clientId}/questions/${questionId}`, { method: 'DELETE', headers })

async function list(url: string, clientId: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/api/v1/events/${clientId}/questions`, { headers })
  return { status: response.status, body: (await response.json()) as any }
}

describe('answer schemas', () => {
  test('an answer that fails the schema gets 422 with JSON-Pointer details; nothing reaches hitl; a valid one goes through', async () => {
    expect((await ask(gw.url, 'schema-1', { question_id: 'sq-1', response_schema: APPROVAL_SCHEMA })).status).toBe(202)
    const before = hitl.posts().length
    const wrong = await answer(gw.url, 'schema-1', { question_id: 'sq-1', response: { approved: 'yes', reason: 'x'.repeat(30), extra: 1 } })
    expect(wrong.status).toBe(422)
    expect(wrong.body.error).toBe('invalid_answer')
    expect(wrong.body.details).toEqual(
      expect.arrayContaining([
        { path: '/approved', message: 'must be boolean' },
        { path: '/reason', message: expect.stringContaining('20') },
        { path: '', message: expect.stringContaining('extra') },
      ]),
    )
    const missing = await answer(gw.url, 'schema-1', { question_id: 'sq-1', response: {} })
    expect(missing.status).toBe(422)
    expect(missing.body.details).toEqual([{ path: '', message: "must have required property 'approved'" }])
    expect(hitl.posts().length).toBe(before)
    expect((await list(gw.url, 'schema-1')).body.questions.map((q: any) => q.question_id)).toEqual(['sq-1'])
    const right = await answer(gw.url, 'schema-1', { question_id: 'sq-1', response: { approved: true, env: 'prod' } })
    expect(right.status).toBe(200)
    expect(hitl.posts().at(-1)!.body).toMatchObject({ question_id: 'sq-1', response: { approved: true, env: 'prod' }, status: 'answered' })
  })

  test('every keyword the contract names is checked', async () => {
    const schema = {
      type: 'object',
      properties: {
        n: { type: 'integer', minimum: 1, maximum: 5 },
        code: { type: 'string', minLength: 2, pattern: '^[A-Z]+$' },
        tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 2 },
        kind: { const: 'deploy' },
        target: { oneOf: [{ type: 'string' }, { type: 'number' }] },
        either: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
      },
    }
    await ask(gw.url, 'schema-2', { question_id: 'kw', response_schema: schema })
    const cases: [unknown, string][] = [
      [{ n: 0 }, '/n'],
      [{ n: 9 }, '/n'],
      [{ n: 1.5 }, '/n'],
      [{ code: 'A' }, '/code'],
      [{ code: 'ab' }, '/code'],
      [{ tags: [] }, '/tags'],
      [{ tags: ['a', 'b', 'c'] }, '/tags'],
      [{ tags: [1] }, '/tags/0'],
      [{ kind: 'other' }, '/kind'],
      [{ target: true }, '/target'],
      [{ either: 'x' }, '/either'],
      ['not an object', ''],
    ]
    for (const [response, path] of cases) {
      const refused = await answer(gw.url, 'schema-2', { question_id: 'kw', response })
      expect({ response, status: refused.status }).toEqual({ response, status: 422 })
      expect(refused.body.details.map((d: any) => d.path)).toContain(path)
    }
  })

  test('at publish: a schema that is not one, or over 16 KiB, and a default response that fails it, get 400', async () => {
    const refusals: Record<string, unknown>[] = [
      { question_id: 'bad-1', response_schema: { type: 'nonsense' } },
      { question_id: 'bad-2', response_schema: 'boolean' },
      { question_id: 'bad-3', response_schema: { type: 'object', properties: { a: { type: 'string', description: 'x'.repeat(17 * 1024) } } } },
      { question_id: 'bad-4', response_schema: { type: 'boolean' }, default_response: 'no', expires_in_ms: 5000 },
    ]
    for (const data of refusals) {
      const refused = await ask(gw.url, 'schema-3', data)
      expect({ id: data.question_id, status: refused.status }).toEqual({ id: data.question_id, status: 400 })
      expect(refused.body.error).toBe('bad_request')
    }
    expect((await list(gw.url, 'schema-3')).body.questions).toEqual([])
  })
})

describe('schemas that would hurt the gateway', () => {
  test('a pattern runs in linear time: a backtracking trap answers 422 at once, not after minutes', async () => {
    await ask(gw.url, 'trap-1', { question_id: 'trap', response_schema: { type: 'string', pattern: '^(a+)+$' } })
    // JavaScript's own engine needs about 2^40 steps for this answer.
    const refused = await answer(gw.url, 'trap-1', { question_id: 'trap', response: `${'a'.repeat(40)}!` })
    expect(refused.status).toBe(422)
    expect((await answer(gw.url, 'trap-1', { question_id: 'trap', response: 'aaaa' })).status).toBe(200)
  })

  test('an asynchronous schema, a pattern with lookaround or a backreference, and an expires_at that is not ISO-8601 get 400', async () => {
    for (const data of [
      { response_schema: { $async: true, type: 'boolean' } },
      { response_schema: { type: 'string', pattern: '(?=a)' } },
      { response_schema: { type: 'string', pattern: '(a)\\1' } },
      { expires_at: '2099' },
      { expires_at: 'Dec 4 2099 10:00' },
    ]) {
      const refused = await ask(gw.url, 'trap-2', { question_id: 'bad', ...data })
      expect({ data, status: refused.status }).toEqual({ data, status: 400 })
    }
  })

  test('an answer nested deeper than the stack under a self-referencing schema gets 422, and the gateway carries on', async () => {
    await ask(gw.url, 'trap-3', { question_id: 'deep', response_schema: { type: 'array', items: { $ref: '#' } } })
    const refused = await fetch(`${gw.url}/api/v1/events/trap-3/response`, { method: 'POST', body: `{"question_id":"deep","response":${'['.repeat(32_500)}${']'.repeat(32_500)}}` })
    expect(refused.status).toBe(422)
    expect((await fetch(`${gw.url}/health`)).status).toBe(200)
  })
})

describe('what hitl receives', () => {
  test('the gateway sets client_id, status and subject, and drops responses, whatever the answerer sent under those names', async () => {
    await ask(gw.url, 'owner-1', { question_id: 'own-1' })
    const sent = await answer(gw.url, 'owner-1', { question_id: 'own-1', response: 'ok', client_id: 'mallory', status: 'expired', subject: 'root', responses: [{ forged: true }], note: 'kept' })
    expect(sent.status).toBe(200)
    const post = hitl.posts().at(-1)!
    expect(post.body).toEqual({ question_id: 'own-1', response: 'ok', note: 'kept', client_id: 'owner-1', status: 'answered', subject: null })
    expect(post.idempotencyKey).toBe('owner-1:own-1')
  })

  test("nor through another service on hitl's backend, whatever base path leads there", async () => {
    const mirrored = await startGateway({ HITL_URL: `${hitl.url}/h`, MIRROR_URL: `${hitl.url}/h`, ROOT_URL: hitl.url, ELSE_URL: `${hitl.url}/other`, RATE_LIMIT: '0' })
    try {
      const before = hitl.seen.length
      for (const path of ['/api/v1/hitl/responses', '/api/v1/mirror/responses', '/api/v1/root/h/responses', '/api/v1/root/H/Responses.json']) {
        expect({ path, status: (await fetch(`${mirrored.url}${path}`, { method: 'POST', body: '{}' })).status }).toEqual({ path, status: 403 })
      }
      expect(hitl.seen.length).toBe(before)
      for (const path of ['/api/v1/root/responses', '/api/v1/else/responses', '/api/v1/mirror/other']) {
        expect({ path, status: (await fetch(`${mirrored.url}${path}`, { method: 'POST', body: '{}' })).status }).toEqual({ path, status: 200 })
      }
    } finally {
      await mirrored.stop()
    }
  })

  test('no request through the proxy reaches an answer path of hitl, however it is spelled: 403', async () => {
    const templated = await startGateway({ HITL_URL: hitl.url, RATE_LIMIT: '0', HITL_RESPONSE_PATH: '/questions/{question_id}/answer' })
    try {
      const before = hitl.seen.length
      const forge = (url: string, path: string) => fetch(`${url}/api/v1/hitl${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question_id: 'q', client_id: 'victim', response: true }) })
      for (const path of ['/responses', '/responses/', '/Responses', '/%72esponses', '/responses?x=1', '/responses;x', '/x/../responses', '/responses.json', '/responses.', '/responses%20']) {
        const refused = await forge(gw.url, path)
        expect({ path, status: refused.status }).toEqual({ path, status: 403 })
      }
      for (const path of ['/questions/q1/answer', '/questions/any.id:x/answer/', '/QUESTIONS/q1/Answer', '/questions/q%31/answer', '/questions//answer']) {
        const refused = await forge(templated.url, path)
        expect({ path, status: refused.status }).toEqual({ path, status: 403 })
        expect((await refused.json()).error).toBe('forbidden')
      }
      expect(hitl.seen.length).toBe(before)
      // Everything else of hitl is proxied as before.
      expect((await forge(gw.url, '/questions')).status).toBe(200)
      expect((await forge(templated.url, '/questions/q1')).status).toBe(200)
      expect((await forge(templated.url, '/responses')).status).toBe(200)
    } finally {
      await templated.stop()
    }
  })
})

describe('deadlines', () => {
  test('the deadline passes: question.expired to the streams, hitl gets the default response once, a late answer gets 409 question_closed', async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/timed-1`)
    const deadline = Date.now() + 1_200
    await ask(gw.url, 'timed-1', { question_id: 'tq-1', expires_at: new Date(deadline).toISOString(), response_schema: { type: 'boolean' }, default_response: false })
    const expired = await stream.waitFor((e) => e.event === 'question.expired', 5_000)
    expect(expired.data.data).toEqual({ question_id: 'tq-1' })
    expect(await waitFor(() => hitl.posts().some((p) => p.idempotencyKey === 'timed-1:tq-1'))).toBe(true)
    const post = hitl.posts().find((p) => p.idempotencyKey === 'timed-1:tq-1')!
    expect(post.body).toEqual({ question_id: 'tq-1', client_id: 'timed-1', status: 'expired', response: false })
    expect(post.target).toBe('/responses')
    const late = await answer(gw.url, 'timed-1', { question_id: 'tq-1', response: true })
    expect(late.status).toBe(409)
    expect(late.body.error).toBe('question_closed')
    expect((await list(gw.url, 'timed-1')).body.questions).toEqual([])
    stream.close()
  })

  test('without a default response the expiry has no response key; it is retried while hitl answers 5xx or is away', async () => {
    hitl.next = [503, 502]
    await ask(gw.url, 'timed-2', { question_id: 'tq-2', expires_in_ms: 1000 })
    expect(await waitFor(() => hitl.posts().filter((p) => p.idempotencyKey === 'timed-2:tq-2').length >= 3, 8_000)).toBe(true)
    const posts = hitl.posts().filter((p) => p.idempotencyKey === 'timed-2:tq-2')
    for (const post of posts) expect(post.body).toEqual({ question_id: 'tq-2', client_id: 'timed-2', status: 'expired' })
    await Bun.sleep(300)
    expect(hitl.posts().filter((p) => p.idempotencyKey === 'timed-2:tq-2')).toHaveLength(3)
  })

  test("hitl's 2xx decides, not its body: a body that never ends leaves the question answered, and its deadline does nothing", async () => {
    await ask(gw.url, 'timed-5', { question_id: 'tq-5', expires_in_ms: 1000 })
    hitl.next = ['stall']
    const controller = new AbortController()
    const reply = await fetch(`${gw.url}/api/v1/events/timed-5/response`, { method: 'POST', body: JSON.stringify({ question_id: 'tq-5', response: true }), signal: controller.signal })
    expect(reply.status).toBe(200)
    controller.abort()
    expect((await list(gw.url, 'timed-5')).body.questions).toEqual([])
    await Bun.sleep(1_500)
    expect(hitl.posts().filter((p) => p.idempotencyKey === 'timed-5:tq-5').map((p) => p.body.status)).toEqual(['answered'])
    expect((await answer(gw.url, 'timed-5', { question_id: 'tq-5', response: true })).body.error).toBe('already_answered')
  })

  test('deadline values out of range get 400', async () => {
    const now = Date.now()
    for (const data of [
      { expires_in_ms: 999 },
      { expires_in_ms: 86_400_001 },
      { expires_in_ms: '5000' },
      { expires_at: new Date(now + 500).toISOString() },
      { expires_at: new Date(now + 2 * 86_400_000).toISOString() },
      { expires_at: 'tomorrow' },
      { expires_in_ms: 5000, expires_at: new Date(now + 5000).toISOString() },
    ]) {
      const refused = await ask(gw.url, 'timed-3', { question_id: 'tq-3', ...data })
      expect({ data, status: refused.status }).toEqual({ data, status: 400 })
    }
  })

  test('an answer being forwarded holds the question past its deadline: hitl hears the answer, never an expiry', async () => {
    hitl.delayMs = 1_500
    await ask(gw.url, 'timed-4', { question_id: 'tq-4', expires_in_ms: 1000 })
    const answered = await answer(gw.url, 'timed-4', { question_id: 'tq-4', response: 'in time' })
    expect(answered.status).toBe(200)
    hitl.delayMs = 0
    await Bun.sleep(500)
    const posts = hitl.posts().filter((p) => p.idempotencyKey === 'timed-4:tq-4')
    expect(posts.map((p) => p.body.status)).toEqual(['answered'])
  })
})

describe('approvals', () => {
  test('recorded until required, progress to every approver, the completing answer forwarded once with every response', async () => {
    const approvers = ['ap-ann', 'ap-ben', 'ap-cat']
    const streams = await Promise.all(approvers.map((id) => openStream(`${gw.url}/api/v1/events/${id}`)))
    const published = await publish(gw.url, null, { event_type: 'question', client_ids: approvers, data: { question_id: 'release-1', prompt: 'Release?', required: 2, response_schema: { type: 'boolean' } } })
    expect(published.status).toBe(202)
    expect(published.body.delivered).toBe(3)
    const first = await answer(gw.url, 'ap-ann', { question_id: 'release-1', response: true })
    expect(first).toEqual({ status: 202, body: { question_id: 'release-1', recorded: 1, required: 2 } })
    for (const stream of streams) expect((await stream.waitFor((e) => e.event === 'question.progress')).data.data).toEqual({ question_id: 'release-1', recorded: 1, required: 2 })
    expect((await answer(gw.url, 'ap-ann', { question_id: 'release-1', response: false })).body.error).toBe('already_answered')
    // Recorded: no longer pending for ann, still for the others.
    expect((await list(gw.url, 'ap-ann')).body.questions).toEqual([])
    expect((await list(gw.url, 'ap-cat')).body.questions[0]).toMatchObject({ question_id: 'release-1', required: 2, recorded: 1 })
    const before = hitl.posts().length
    const completing = await answer(gw.url, 'ap-ben', { question_id: 'release-1', response: false })
    expect(completing.status).toBe(200)
    const posts = hitl.posts().slice(before)
    expect(posts).toHaveLength(1)
    expect(posts[0]!.idempotencyKey).toBe('approvals/release-1')
    expect(posts[0]!.body).toEqual({
      question_id: 'release-1',
      status: 'answered',
      responses: [
        { client_id: 'ap-ann', subject: null, response: true, answered_at: expect.stringMatching(/Z$/) },
        { client_id: 'ap-ben', subject: null, response: false, answered_at: expect.stringMatching(/Z$/) },
      ],
    })
    for (const stream of streams) {
      expect((await stream.waitFor((e) => e.event === 'question.answered')).data.data).toEqual({ question_id: 'release-1' })
      stream.close()
    }
    expect((await answer(gw.url, 'ap-cat', { question_id: 'release-1', response: true })).body.error).toBe('already_answered')
  })

  test('a failed forward un-records the completing answer; of two racing for the last place one is forwarded, one gets 409', async () => {
    const approvers = ['race-a', 'race-b', 'race-c']
    await publish(gw.url, null, { event_type: 'question', client_ids: approvers, data: { question_id: 'race-1', required: 2 } })
    await answer(gw.url, 'race-a', { question_id: 'race-1', response: 1 })
    hitl.next = [500]
    const failed = await answer(gw.url, 'race-b', { question_id: 'race-1', response: 2 })
    expect(failed.status).toBe(500)
    expect((await list(gw.url, 'race-b')).body.questions[0]).toMatchObject({ recorded: 1 })
    hitl.delayMs = 200
    const [b, c] = await Promise.all([answer(gw.url, 'race-b', { question_id: 'race-1', response: 2 }), answer(gw.url, 'race-c', { question_id: 'race-1', response: 3 })])
    expect([b.status, c.status].sort()).toEqual([200, 409])
    const forwarded = hitl.posts().filter((p) => p.idempotencyKey === 'approvals/race-1' && p.body.status === 'answered')
    expect(forwarded.at(-1)!.body.responses.map((r: any) => r.client_id)).toEqual(['race-a', b.status === 200 ? 'race-b' : 'race-c'])
  })

  test('required without an explicit list, out of range, or an id already pending for an approver: 400', async () => {
    await ask(gw.url, 'ap-busy', { question_id: 'taken-1' })
    const cases = [
      publish(gw.url, 'ap-single', { event_type: 'question', data: { question_id: 'r-1', required: 1 } }),
      publish(gw.url, null, { event_type: 'question', data: { question_id: 'r-2', required: 1 } }),
      publish(gw.url, null, { event_type: 'question', client_ids: ['x1', 'x2'], data: { question_id: 'r-3', required: 3 } }),
      publish(gw.url, null, { event_type: 'question', client_ids: ['x1', 'x2'], data: { question_id: 'r-4', required: 0 } }),
      publish(gw.url, null, { event_type: 'question', client_ids: ['x1', 'ap-busy'], data: { question_id: 'taken-1', required: 1 } }),
    ]
    for (const refused of await Promise.all(cases)) expect(refused.status).toBe(400)
    expect((await list(gw.url, 'x1')).body.questions).toEqual([])
  })
})

describe('cancellation and listing', () => {
  test('DELETE closes the question for every client: 204, question.cancelled, then 409; unknown 404; nothing to hitl', async () => {
    const streams = await Promise.all(['cx-1', 'cx-2'].map((id) => openStream(`${gw.url}/api/v1/events/${id}`)))
    await publish(gw.url, null, { event_type: 'question', client_ids: ['cx-1', 'cx-2'], data: { question_id: 'gone-1', required: 2 } })
    const before = hitl.seen.length
    expect((await cancel(gw.url, 'cx-2', 'gone-1')).status).toBe(204)
    for (const stream of streams) {
      expect((await stream.waitFor((e) => e.event === 'question.cancelled')).data.data).toEqual({ question_id: 'gone-1' })
      stream.close()
    }
    const again = await cancel(gw.url, 'cx-1', 'gone-1')
    expect(again.status).toBe(409)
    expect((await again.json()).error).toBe('question_closed')
    expect((await answer(gw.url, 'cx-1', { question_id: 'gone-1', response: true })).body.error).toBe('question_closed')
    expect((await cancel(gw.url, 'cx-1', 'never')).status).toBe(404)
    expect((await cancel(gw.url, 'cx-1', 'a%zz')).status).toBe(400)
    expect((await cancel(gw.url, 'cx-1', 'a%20b')).status).toBe(400)
    expect(hitl.seen.length).toBe(before)
  })

  test('a cancellation that meets an answer being forwarded waits for it: 409 when it is delivered, 204 when it fails', async () => {
    await ask(gw.url, 'cw-1', { question_id: 'cw-ok' })
    hitl.delayMs = 400
    const answering = answer(gw.url, 'cw-1', { question_id: 'cw-ok', response: true })
    await Bun.sleep(100)
    const cancelled = await cancel(gw.url, 'cw-1', 'cw-ok')
    expect((await answering).status).toBe(200)
    expect(cancelled.status).toBe(409)

    await ask(gw.url, 'cw-2', { question_id: 'cw-fail' })
    hitl.next = [500]
    const failing = answer(gw.url, 'cw-2', { question_id: 'cw-fail', response: true })
    await Bun.sleep(100)
    const withdrawn = await cancel(gw.url, 'cw-2', 'cw-fail')
    expect((await failing).status).toBe(500)
    expect(withdrawn.status).toBe(204)
  })

  test('the list: pending questions oldest first, with created_at, expires_at, required and recorded', async () => {
    const first = await ask(gw.url, 'lister-1', { question_id: 'l-1', expires_in_ms: 60_000 })
    await ask(gw.url, 'lister-1', { question_id: 'l-2' })
    const { status, body } = await list(gw.url, 'lister-1')
    expect(status).toBe(200)
    expect(body.questions.map((q: any) => q.question_id)).toEqual(['l-1', 'l-2'])
    expect(body.questions[0]).toEqual({
      question_id: 'l-1',
      event_id: first.body.id,
      data: { prompt: 'Deploy?', question_id: 'l-1', expires_in_ms: 60_000 },
      created_at: expect.stringMatching(/Z$/),
      expires_at: expect.stringMatching(/Z$/),
      required: null,
      recorded: null,
    })
    expect(Date.parse(body.questions[0].expires_at) - Date.parse(body.questions[0].created_at)).toBeGreaterThan(59_000)
    expect(body.questions[1].expires_at).toBeNull()
  })

  test('with authentication: the list is bound to the client; DELETE takes PUBLISH_TOKEN only, and is never rate limited', async () => {
    const guarded = await startGateway({ HITL_URL: hitl.url, AUTH_JWT_SECRET: TEST_SECRET, PUBLISH_TOKEN: 'pub-token', RATE_LIMIT: '60', RATE_LIMIT_BURST: '3' })
    try {
      const publisher = { authorization: 'Bearer pub-token' }
      const alice = { authorization: `Bearer ${await hs256Token(TEST_SECRET, { claims: { sub: 'alice' } })}` }
      await ask(guarded.url, 'alice', { question_id: 'auth-1' }, publisher)
      expect((await list(guarded.url, 'alice', alice)).body.questions.map((q: any) => q.question_id)).toEqual(['auth-1'])
      expect((await list(guarded.url, 'bob', alice)).status).toBe(403)
      expect((await list(guarded.url, 'alice')).status).toBe(401)
      // A person's own token does not withdraw a question.
      expect((await cancel(guarded.url, 'alice', 'auth-1', alice)).status).toBe(401)
      expect((await cancel(guarded.url, 'alice', 'auth-1')).status).toBe(401)
      const statuses: number[] = []
      for (let i = 0; i < 5; i++) statuses.push((await cancel(guarded.url, 'alice', 'auth-1', publisher)).status)
      expect(statuses).toEqual([204, 409, 409, 409, 409])
      // The three lists spent the burst: a person's next request is limited, a publisher's DELETE was not.
      expect((await list(guarded.url, 'alice', alice)).status).toBe(429)
    } finally {
      await guarded.stop()
    }
  })
})

describe('audit', () => {
  test("every close writes one 'Question closed' line with who answered, and /metrics counts each outcome", async () => {
    const audited = await startGateway({ HITL_URL: hitl.url, AUTH_JWT_SECRET: TEST_SECRET, RATE_LIMIT: '0' })
    try {
      const tokenOf = async (sub: string) => ({ authorization: `Bearer ${await hs256Token(TEST_SECRET, { claims: { sub } })}` })
      await publish(audited.url, null, { event_type: 'question', client_ids: ['au-1', 'au-2'], data: { question_id: 'audit-ok', required: 2 } })
      expect((await answer(audited.url, 'au-1', { question_id: 'audit-ok', response: true }, await tokenOf('au-1'))).status).toBe(202)
      expect((await answer(audited.url, 'au-2', { question_id: 'audit-ok', response: true }, await tokenOf('au-2'))).status).toBe(200)
      await ask(audited.url, 'au-3', { question_id: 'audit-cancel' })
      expect((await cancel(audited.url, 'au-3', 'audit-cancel')).status).toBe(204)
      await ask(audited.url, 'au-4', { question_id: 'audit-expire', expires_in_ms: 1000 })
      expect(await waitFor(() => audited.logs.filter((l) => l.msg === 'Question closed').length === 3, 5_000)).toBe(true)
      const lines = audited.logs.filter((l) => l.msg === 'Question closed')
      expect(lines.map((l) => [l.question_id, l.outcome])).toEqual([
        ['audit-ok', 'answered'],
        ['audit-cancel', 'cancelled'],
        ['audit-expire', 'expired'],
      ])
      expect(lines[0]).toMatchObject({ level: 'info', client_ids: ['au-1', 'au-2'], subjects: ['au-1', 'au-2'], open_ms: expect.any(Number) })
      expect(lines[1]).toMatchObject({ client_id: 'au-3', subjects: [] })
      const metrics = await (await fetch(`${audited.url}/metrics`)).text()
      for (const [outcome, count] of [['published', 3], ['answered', 1], ['cancelled', 1], ['expired', 1]] as const) {
        expect(metrics).toContain(`gateway_questions_total{outcome="${outcome}"} ${count}`)
      }
      expect(metrics).toContain('gateway_question_open_seconds_count 3')
    } finally {
      await audited.stop()
    }
  })
})
