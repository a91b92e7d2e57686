/**
 * With authentication on, a token speaks for one client: nobody subscribes to, or answers,
 * another person's questions. Publishing is the backends' and keeps PUBLISH_TOKEN.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { openStream, publish } from '../helpers/sse-client'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'

let hitl: MockBackend
let gw: RunningGateway
let alice: string
let bob: string

beforeAll(async () => {
  hitl = startBackend(() => Response.json({ ok: true }))
  gw = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, HITL_URL: hitl.url, RATE_LIMIT: '0' })
  alice = await hs256Token(TEST_SECRET, { claims: { sub: 'alice' } })
  bob = await hs256Token(TEST_SECRET, { claims: { sub: 'bob' } })
})

afterAll(async () => {
  await gw.stop()
  hitl.stop()
})

const answer = (clientId: string, token: string, questionId: string, extra: Record<string, string> = {}) =>
  fetch(`${gw.url}/api/v1/events/${clientId}/response`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...extra },
    body: JSON.stringify({ question_id: questionId, response: 'approve' }),
  })

test("subscribing to another person's stream: 403 forbidden; one's own: the stream opens", async () => {
  const denied = await fetch(`${gw.url}/api/v1/events/alice`, { headers: { authorization: `Bearer ${bob}` } })
  expect(denied.status).toBe(403)
  expect(((await denied.json()) as { error: string }).error).toBe('forbidden')
  expect((await fetch(`${gw.url}/api/v1/events/alice`)).status).toBe(401)

  const own = await openStream(`${gw.url}/api/v1/events/alice`, { authorization: `Bearer ${alice}` })
  try {
    expect(own.response.status).toBe(200)
    await own.waitFor((e) => e.event === 'connection.established')
  } finally {
    own.close()
  }
})

test('EventSource style: the token in the access_token query parameter opens the stream', async () => {
  const stream = await openStream(`${gw.url}/api/v1/events/alice?access_token=${alice}`)
  try {
    expect(stream.response.status).toBe(200)
    await stream.waitFor((e) => e.event === 'connection.established')
  } finally {
    stream.close()
  }
  const other = await fetch(`${gw.url}/api/v1/events/alice?access_token=${bob}`)
  expect(other.status).toBe(403)
})

test("answering another person's question: 403, the hitl service hears nothing, and the owner can still answer", async () => {
  expect((await publish(gw.url, 'alice', { event_type: 'question', data: { question_id: 'deploy-7', prompt: 'Deploy?' } })).status).toBe(202)
  const before = hitl.seen.length
  const stolen = await answer('alice', bob, 'deploy-7')
  expect(stolen.status).toBe(403)
  expect(hitl.seen.length).toBe(before)

  const own = await answer('alice', alice, 'deploy-7', { 'x-auth-subject': 'admin' })
  expect(own.status).toBe(200)
  const forwarded = hitl.seen.at(-1)!
  expect(forwarded.headers.get('x-auth-subject')).toBe('alice')
  expect(JSON.parse(forwarded.body).client_id).toBe('alice')
})

test("publishing to a client needs none of that client's token: it keeps PUBLISH_TOKEN's rules (here loopback, none configured)", async () => {
  // From loopback without PUBLISH_TOKEN configured: allowed, whoever the client is.
  expect((await publish(gw.url, 'bob', { event_type: 'run.started', data: {} })).status).toBe(202)
})

test("a trailing slash or dot segments never turn someone else's publish into an unchecked one", async () => {
  const guarded = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, HITL_URL: hitl.url, RATE_LIMIT: '0', PUBLISH_TOKEN: 'publisher-token' })
  const plain = await startGateway({ HITL_URL: hitl.url, RATE_LIMIT: '0', PUBLISH_TOKEN: 'publisher-token' })
  try {
    const body = JSON.stringify({ event_type: 'question', data: { question_id: 'forged', prompt: 'Approve?' } })
    for (const path of ['/api/v1/events/alice/', '/api/v1/events/./alice/', '/api/v1/events/alice/.', '/api/v1/events/']) {
      // With authentication on, bob's valid token; without it, no credentials at all.
      const withToken = await fetch(`${guarded.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' }, body })
      const without = await fetch(`${plain.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      // 404 (no such route), or 401 where the path is read as publishing and so asks for PUBLISH_TOKEN.
      for (const status of [withToken.status, without.status]) expect([path, [401, 404].includes(status)]).toEqual([path, true])
    }
    expect((await guarded.gateway.broker.pendingQuestions('alice')).length).toBe(0)
    expect((await plain.gateway.broker.pendingQuestions('alice')).length).toBe(0)
  } finally {
    await guarded.stop()
    await plain.stop()
  }
})

test('AUTH_CLIENT_CLAIM names another claim, compared with the percent-decoded client_id', async () => {
  const teams = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_CLIENT_CLAIM: 'client_id', HITL_URL: hitl.url, RATE_LIMIT: '0' })
  try {
    const token = await hs256Token(TEST_SECRET, { claims: { sub: 'alice', client_id: 'team:7' } })
    const stream = await openStream(`${teams.url}/api/v1/events/team%3A7`, { authorization: `Bearer ${token}` })
    expect(stream.response.status).toBe(200)
    stream.close()
    // The sub is not the client claim here.
    expect((await fetch(`${teams.url}/api/v1/events/alice`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403)
    // A token without the claim at all.
    expect((await fetch(`${teams.url}/api/v1/events/team%3A7`, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(403)
    const metrics = await (await fetch(`${teams.url}/metrics`)).text()
    expect(metrics).toMatch(/^gateway_auth_failures_total\{reason="forbidden"\} 2$/m)
  } finally {
    await teams.stop()
  }
})
