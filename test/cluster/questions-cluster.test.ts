/**
 * Questions in cluster mode, against the compiled binary: two gateways sharing a real
 * redis-server and a recording hitl service. Every decision is made once for the cluster:
 * approvals answered through different gateways, one expiry POST per question, and expiries
 * that survive a gateway killed before or during their delivery.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type GatewayProcess, buildBinary, startGatewayProcess } from '../helpers/gateway-process'
import { type RecordingHitl, startRecordingHitl } from '../helpers/hitl'
import { type TestRedis, startRedis } from '../helpers/redis'
import { openStream, publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

let redis: TestRedis
let hitl: RecordingHitl
let a: GatewayProcess
let b: GatewayProcess

beforeAll(async () => {
  buildBinary()
  redis = await startRedis()
  hitl = startRecordingHitl()
  // A short hitl timeout and no retries: a claimed delivery's lease is 10 s past the 1 s call.
  const env = { REDIS_URL: redis.url, HITL_URL: hitl.url, RATE_LIMIT: '0', UPSTREAM_TIMEOUT_MS: '1000', UPSTREAM_RETRIES: '0' }
  ;[a, b] = await Promise.all([startGatewayProcess(env, { binary: true }), startGatewayProcess(env, { binary: true })])
}, 60_000)
afterAll(async () => {
  await Promise.all([a.kill(), b.kill()])
  hitl.stop()
  await redis.stop()
})

async function answer(url: string, clientId: string, body: unknown) {
  const response = await fetch(`${url}/api/v1/events/${clientId}/response`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, body: (await response.json()) as any }
}

const postsFor = (key: string) => hitl.posts().filter((post) => post.idempotencyKey === key)

describe('questions across a cluster', () => {
  test('approvals answered through different gateways: progress and the answer reach streams on both, hitl hears once', async () => {
    const onA = await openStream(`${a.url}/api/v1/events/cl-ann`)
    const onB = await openStream(`${b.url}/api/v1/events/cl-ben`)
    await Promise.all([onA, onB].map((s) => s.waitFor((e) => e.event === 'connection.established')))
    const published = await publish(a.url, null, { event_type: 'question', client_ids: ['cl-ann', 'cl-ben', 'cl-cat'], data: { question_id: 'cl-release', required: 2, response_schema: { type: 'boolean' } } })
    expect(published.body.delivered).toBe(2)
    expect((await answer(b.url, 'cl-ann', { question_id: 'cl-release', response: 'yes' })).status).toBe(422)
    expect(await answer(b.url, 'cl-ann', { question_id: 'cl-release', response: true })).toEqual({ status: 202, body: { question_id: 'cl-release', recorded: 1, required: 2 } })
    for (const stream of [onA, onB]) expect((await stream.waitFor((e) => e.event === 'question.progress')).data.data.recorded).toBe(1)
    // The same approver through the other gateway: one vote.
    expect((await answer(a.url, 'cl-ann', { question_id: 'cl-release', response: true })).body.error).toBe('already_answered')
    const [ben, cat] = await Promise.all([answer(a.url, 'cl-ben', { question_id: 'cl-release', response: false }), answer(b.url, 'cl-cat', { question_id: 'cl-release', response: true })])
    expect([ben.status, cat.status].sort()).toEqual([200, 409])
    for (const stream of [onA, onB]) {
      await stream.waitFor((e) => e.event === 'question.answered')
      stream.close()
    }
    const posts = postsFor('approvals/cl-release')
    expect(posts).toHaveLength(1)
    expect(posts[0]!.body.responses.map((r: any) => r.client_id)).toEqual(['cl-ann', ben.status === 200 ? 'cl-ben' : 'cl-cat'])
  })

  test('questions published through both gateways expire once each: one POST per question for the cluster', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `cl-exp-${i}`)
    await Promise.all(ids.map((id, i) => publish(i % 2 === 0 ? a.url : b.url, id, { event_type: 'question', data: { question_id: 'q', expires_in_ms: 1000, default_response: 'no' } })))
    expect(await waitFor(() => ids.every((id) => postsFor(`${id}:q`).length > 0), 5_000)).toBe(true)
    await Bun.sleep(700)
    for (const id of ids) expect({ id, posts: postsFor(`${id}:q`).length }).toEqual({ id, posts: 1 })
    expect(postsFor('cl-exp-0:q')[0]!.body).toEqual({ question_id: 'q', client_id: 'cl-exp-0', status: 'expired', response: 'no' })
    expect((await answer(b.url, 'cl-exp-0', { question_id: 'q', response: 'yes' })).body.error).toBe('question_closed')
  })

  test('a deadline survives the gateway that took the question being SIGKILLed', async () => {
    await publish(a.url, 'cl-orphan', { event_type: 'question', data: { question_id: 'q', expires_in_ms: 1500 } })
    await a.kill('SIGKILL')
    try {
      expect(await waitFor(() => postsFor('cl-orphan:q').length > 0, 5_000)).toBe(true)
      expect(postsFor('cl-orphan:q')[0]!.body.status).toBe('expired')
    } finally {
      await a.restart()
    }
  })

  test('a gateway SIGKILLed mid-delivery: another delivers again after the lease, with the same Idempotency-Key', async () => {
    // Only `b` runs while the expiry falls due, and hitl holds its POST open.
    await a.kill('SIGKILL')
    hitl.next = ['hang']
    await publish(b.url, 'cl-midway', { event_type: 'question', data: { question_id: 'q', expires_in_ms: 1000 } })
    expect(await waitFor(() => postsFor('cl-midway:q').length === 1, 5_000)).toBe(true)
    await b.kill('SIGKILL')
    await a.restart()
    try {
      // The claim lapses 10 s past the 1 s call; then `a` delivers it.
      expect(await waitFor(() => postsFor('cl-midway:q').length === 2, 20_000)).toBe(true)
      const [first, second] = postsFor('cl-midway:q')
      expect(second!.body).toEqual(first!.body)
      await Bun.sleep(500)
      expect(postsFor('cl-midway:q')).toHaveLength(2)
    } finally {
      await b.restart()
    }
  }, 40_000)
})
