/**
 * Ambiguous framing (RFC 9112 §6.3) is refused with 400 and never forwarded: two
 * `Content-Length` headers, equal or not, and `Content-Length` with `Transfer-Encoding`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { rawRequest } from '../helpers/raw-http'

let backend: MockBackend
let gw: RunningGateway

beforeAll(async () => {
  backend = startBackend()
  gw = await startGateway({ ORCHESTRATOR_URL: backend.url })
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
})

const request = (target: string, framing: string, body: string) =>
  `POST ${target} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n${framing}\r\n${body}`

async function expectRefused(raw: string, json: boolean) {
  const before = backend.seen.length
  const answer = await rawRequest(gw.port, raw)
  expect(answer.status).toBe(400)
  if (json) expect(JSON.parse(answer.body)).toMatchObject({ error: 'bad_request', message: expect.stringContaining('ambiguous framing') })
  // The stream of bytes cannot be trusted after such a request: the connection ends with the answer.
  expect(answer.closed).toBe(true)
  expect(backend.seen.length).toBe(before)
  // The gateway keeps serving.
  expect((await fetch(`${gw.url}/api/v1/orchestrator/after`)).status).toBe(200)
}

describe('ambiguous framing is refused and never forwarded', () => {
  test('two equal Content-Length headers on a proxied request → JSON 400', () =>
    expectRefused(request('/api/v1/orchestrator/upload', 'Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), true))

  test('two equal Content-Length headers on an event route → JSON 400, nothing published', async () => {
    const body = JSON.stringify({ event_type: 'step', data: {} })
    const framing = `Content-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n`
    await expectRefused(request('/api/v1/events/framing-client', framing, body), true)
    const replay = await rawRequest(gw.port, 'GET /api/v1/events/framing-client?lastEventId=0 HTTP/1.1\r\nHost: gw\r\n\r\n', 300)
    expect(replay.body).not.toContain('event: step')
  })

  test('two different Content-Length headers → 400 from the HTTP parser', () =>
    expectRefused(request('/api/v1/orchestrator/upload', 'Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), false))

  test('Content-Length with Transfer-Encoding, in either order → 400', async () => {
    const chunked = '5\r\nhello\r\n0\r\n\r\n'
    await expectRefused(request('/api/v1/orchestrator/upload', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', chunked), false)
    await expectRefused(request('/api/v1/orchestrator/upload', 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', chunked), false)
  })

  test('one Content-Length, or chunked alone, is forwarded', async () => {
    const before = backend.seen.length
    expect((await rawRequest(gw.port, request('/api/v1/orchestrator/one', 'Content-Length: 5\r\nConnection: close\r\n', 'hello'))).status).toBe(200)
    expect((await rawRequest(gw.port, request('/api/v1/orchestrator/two', 'Transfer-Encoding: chunked\r\nConnection: close\r\n', '5\r\nhello\r\n0\r\n\r\n'))).status).toBe(200)
    expect(backend.seen.slice(before).map((seen) => seen.body)).toEqual(['hello', 'hello'])
  })
})
