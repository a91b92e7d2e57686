/**
 * Several instances per service (README, "Instances"): balancing by least requests in flight,
 * retries only where nothing reached a backend (or a GET saw no answer), passive health with
 * ejection, a probe after the cooldown and restoration, and 503 at once while every instance
 * is out. Every backend is real: Bun servers that count, a closed port, raw sockets that stall
 * or reset.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { type FaultyBackend, startResettingBackend, startSilentBackend } from '../helpers/faulty-backends'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { publish } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

let a: MockBackend
let b: MockBackend
let resetting: FaultyBackend
let silent: FaultyBackend
let closedUrl: string
const gateways: RunningGateway[] = []

beforeAll(async () => {
  const named = (name: string) => async (request: Request) => {
    const path = new URL(request.url).pathname
    if (path.endsWith('/slow')) await Bun.sleep(200)
    if (path.endsWith('/unavailable')) return Response.json({ from: name }, { status: 503 })
    return Response.json({ from: name, body: request.body ? await request.text() : null })
  }
  a = startBackend(named('a'), { readBody: false })
  b = startBackend(named('b'), { readBody: false })
  resetting = await startResettingBackend()
  silent = await startSilentBackend()
  closedUrl = `http://127.0.0.1:${await closedPort()}`
})

afterAll(async () => {
  for (const gw of gateways) await gw.stop()
  a.stop()
  b.stop()
  resetting.stop()
  silent.stop()
})

async function gateway(env: Record<string, string>): Promise<RunningGateway> {
  const gw = await startGateway({ RATE_LIMIT: '0', ...env })
  gateways.push(gw)
  return gw
}

const proxiedLines = (gw: RunningGateway) => gw.logs.filter((l) => l.msg === 'Proxied request')
const metric = async (gw: RunningGateway, pattern: RegExp) => Number(pattern.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? Number.NaN)

describe('instances and balancing', () => {
  test('a comma list (spaces trimmed) registers one service whose requests are spread over every instance', async () => {
    const gw = await gateway({ X_URL: ` ${a.url} , ${b.url}/ ` })
    const before = [a.seen.length, b.seen.length]
    for (let i = 0; i < 20; i++) expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(200)
    expect(a.seen.length - before[0]! + (b.seen.length - before[1]!)).toBe(20)
    expect(a.seen.length - before[0]!).toBeGreaterThan(0)
    expect(b.seen.length - before[1]!).toBeGreaterThan(0)
    const started = gw.logs.find((l) => l.msg === 'Upstream instance ejected')
    expect(started).toBeUndefined()
  })

  test('least requests in flight: while one instance is slow, the other gets the new work', async () => {
    const slowBackend = startBackend(async () => (await Bun.sleep(200), Response.json({ from: 'slow' })))
    try {
      const gw = await gateway({ X_URL: `${slowBackend.url},${a.url}` })
      const before = [slowBackend.seen.length, a.seen.length]
      // Four clients, ten requests each, one after another: the slow instance holds its requests
      // for 200 ms, so it has more in flight whenever a new request is placed, and gets less.
      const client = async () => {
        for (let i = 0; i < 10; i++) await (await fetch(`${gw.url}/api/v1/x/any`)).text()
      }
      await Promise.all([client(), client(), client(), client()])
      const toSlow = slowBackend.seen.length - before[0]!
      const toFast = a.seen.length - before[1]!
      expect(toSlow + toFast).toBe(40)
      // Round robin would give 20 and 20.
      expect(toFast).toBeGreaterThan(1.5 * toSlow)
    } finally {
      slowBackend.stop()
    }
  })

  test('a streamed response counts as in flight until its body ends', async () => {
    // Instance a answers at once but streams for 300 ms; with it busy, b must take the next request.
    const streaming = startBackend(() => {
      const body = new ReadableStream({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode('first '))
          await Bun.sleep(300)
          controller.enqueue(new TextEncoder().encode('last'))
          controller.close()
        },
      })
      return new Response(body)
    })
    try {
      const gw = await gateway({ X_URL: `${streaming.url},${b.url}` })
      // Until one lands on the streaming instance (a tie goes either way); the others end at once.
      let held: Response | undefined
      while (held === undefined) {
        const seen = streaming.seen.length
        const response = await fetch(`${gw.url}/api/v1/x/stream`)
        if (streaming.seen.length > seen) held = response
        else await response.text()
      }
      const before = [streaming.seen.length, b.seen.length]
      // Its headers have arrived, its body has not ended: it is still in flight, so b takes the next ones.
      for (let i = 0; i < 5; i++) await (await fetch(`${gw.url}/api/v1/x/ok`)).text()
      expect([streaming.seen.length - before[0]!, b.seen.length - before[1]!]).toEqual([0, 5])
      expect(await held.text()).toBe('first last')
    } finally {
      streaming.stop()
    }
  })
})

describe('retries', () => {
  test('a connection that could not be made is retried on another instance, whatever the method, body included', async () => {
    const gw = await gateway({ X_URL: `${closedUrl},${a.url}`, CIRCUIT_FAILURES: '0' })
    // Ties go either way: 20 requests make some land on the closed instance first.
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${gw.url}/api/v1/x/ok`, { method: 'POST', body: `payload-${i}`, headers: { 'x-request-id': `retry-${i}` } })
      expect(response.status).toBe(200)
      expect(((await response.json()) as { body: string }).body).toBe(`payload-${i}`)
    }
    const lines = proxiedLines(gw)
    expect(lines.every((l) => l.attempts === 1 || l.attempts === 2)).toBe(true)
    const retried = lines.filter((l) => l.attempts === 2)
    expect(retried.length).toBeGreaterThan(0)
    // A retried request keeps its X-Request-Id; the metric counts the retries by reason.
    const idsAtBackend = new Set(a.seen.map((r) => r.headers.get('x-request-id')))
    for (const line of retried) expect(idsAtBackend.has(line.request_id as string)).toBe(true)
    expect(await metric(gw, /^gateway_upstream_retries_total\{service="x",reason="connect"\} (\d+)/m)).toBe(retried.length)
  })

  test('UPSTREAM_RETRIES=0: no retry, the closed instance gives 502', async () => {
    const gw = await gateway({ X_URL: `${closedUrl},${a.url}`, CIRCUIT_FAILURES: '0', UPSTREAM_RETRIES: '0' })
    const statuses = new Set<number>()
    for (let i = 0; i < 16; i++) statuses.add((await fetch(`${gw.url}/api/v1/x/ok`)).status)
    expect(statuses).toEqual(new Set([200, 502]))
  })

  test('a GET the backend closed without answering is retried; a POST that reached it is not', async () => {
    const gw = await gateway({ X_URL: `${resetting.url},${a.url}`, CIRCUIT_FAILURES: '0' })
    for (let i = 0; i < 16; i++) expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(200)
    const posts = new Set<number>()
    for (let i = 0; i < 16; i++) posts.add((await fetch(`${gw.url}/api/v1/x/ok`, { method: 'POST', body: 'once' })).status)
    expect(posts).toEqual(new Set([200, 502]))
    expect(resetting.connections()).toBeGreaterThan(0)
  })

  test('a response is never retried, nor the wait for one (timeout)', async () => {
    const unavailable = await gateway({ X_URL: `${a.url},${b.url}`, CIRCUIT_FAILURES: '0' })
    const response = await fetch(`${unavailable.url}/api/v1/x/unavailable`)
    expect(response.status).toBe(503)
    expect(proxiedLines(unavailable).at(-1)!.attempts).toBe(1)

    const stalled = await gateway({ X_URL: `${silent.url},${a.url}`, CIRCUIT_FAILURES: '0', UPSTREAM_TIMEOUT_MS: '300' })
    const statuses = new Set<number>()
    for (let i = 0; i < 16 && statuses.size < 2; i++) statuses.add((await fetch(`${stalled.url}/api/v1/x/ok`)).status)
    expect(statuses).toEqual(new Set([200, 504]))
    expect(proxiedLines(stalled).filter((l) => l.status === 504).every((l) => l.attempts === 1)).toBe(true)
  })

  test('a streamed body of unknown length is not retried (it cannot be sent twice)', async () => {
    const gw = await gateway({ X_URL: `${closedUrl},${a.url}`, CIRCUIT_FAILURES: '0' })
    const statuses = new Set<number>()
    for (let i = 0; i < 16; i++) {
      const body = new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('chunked')), c.close()) })
      statuses.add((await fetch(`${gw.url}/api/v1/x/ok`, { method: 'POST', body, duplex: 'half' } as RequestInit)).status)
    }
    expect(statuses).toEqual(new Set([200, 502]))
  })
})

describe('passive health', () => {
  test('consecutive failures eject an instance: logged once, counted, gauge 0, and no more traffic until its probe; then restored', async () => {
    const port = Number(new URL(closedUrl).port)
    const gw = await gateway({ X_URL: `${closedUrl},${a.url}`, CIRCUIT_FAILURES: '2', CIRCUIT_COOLDOWN_MS: '400' })
    // Ties go either way: 30 requests make two picks of the closed instance all but certain.
    for (let i = 0; i < 30; i++) expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(200)
    const ejected = gw.logs.filter((l) => l.msg === 'Upstream instance ejected after consecutive failures')
    expect(ejected).toHaveLength(1)
    expect(ejected[0]!.instance).toBe(closedUrl)
    expect(await metric(gw, new RegExp(`^gateway_upstream_healthy\\{service="x",instance="${closedUrl}"\\} (\\d+)`, 'm'))).toBe(0)
    expect(await metric(gw, new RegExp(`^gateway_upstream_ejections_total\\{service="x",instance="${closedUrl}"\\} (\\d+)`, 'm'))).toBe(1)
    // While ejected, requests are not even tried on it: one attempt each.
    const lines = proxiedLines(gw).length
    for (let i = 0; i < 5; i++) await fetch(`${gw.url}/api/v1/x/ok`)
    expect(proxiedLines(gw).slice(lines).map((l) => l.attempts)).toEqual([1, 1, 1, 1, 1])

    // The instance comes back; after the cooldown a probe finds it and restores it.
    const revived = Bun.serve({ hostname: '127.0.0.1', port, fetch: () => Response.json({ from: 'revived' }) })
    try {
      await Bun.sleep(450)
      const froms = new Set<string>()
      for (let i = 0; i < 10; i++) froms.add(((await (await fetch(`${gw.url}/api/v1/x/ok`)).json()) as { from: string }).from)
      expect(froms.has('revived')).toBe(true)
      expect(gw.logs.filter((l) => l.msg === 'Upstream instance restored: its probe request succeeded')).toHaveLength(1)
      expect(await metric(gw, new RegExp(`^gateway_upstream_healthy\\{service="x",instance="${closedUrl}"\\} (\\d+)`, 'm'))).toBe(1)
    } finally {
      revived.stop(true)
    }
  })

  test("by default a backend's own 503s never eject it: a client hammering a path that answers 503 cannot take the instance out for everyone", async () => {
    const gw = await gateway({ X_URL: a.url, CIRCUIT_FAILURES: '3', CIRCUIT_COOLDOWN_MS: '60000' })
    for (let i = 0; i < 20; i++) expect((await fetch(`${gw.url}/api/v1/x/unavailable`)).status).toBe(503)
    const other = await fetch(`${gw.url}/api/v1/x/ok`)
    expect(other.status).toBe(200)
    expect(((await other.json()) as { from: string }).from).toBe('a')
    expect(gw.logs.filter((l) => l.msg === 'Upstream instance ejected after consecutive failures')).toHaveLength(0)
    expect(await metric(gw, new RegExp(`^gateway_upstream_healthy\\{service="x",instance="${a.url}"\\} (\\d+)`, 'm'))).toBe(1)
  })

  test('with CIRCUIT_STATUSES=502,503,504 those answers count as failures: a lone instance answering 503 is ejected, then 503 at once with Retry-After, touching no backend', async () => {
    const gw = await gateway({ X_URL: a.url, CIRCUIT_FAILURES: '3', CIRCUIT_COOLDOWN_MS: '2500', CIRCUIT_STATUSES: '502, 503,504' })
    for (let i = 0; i < 3; i++) expect((await fetch(`${gw.url}/api/v1/x/unavailable`)).status).toBe(503)
    const before = a.seen.length
    const refused = await fetch(`${gw.url}/api/v1/x/ok`)
    expect(refused.status).toBe(503)
    const body = (await refused.json()) as { error: string; message: string }
    expect(body.error).toBe('service_unavailable')
    expect(body.message).toContain('out of rotation')
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(3)
    expect(a.seen.length).toBe(before)
    expect(proxiedLines(gw).at(-1)).toMatchObject({ status: 503, attempts: 0, upstream_error: 'ejected' })
  })

  test('a failed probe ejects again; a good answer in between resets the count', async () => {
    const gw = await gateway({ X_URL: closedUrl, CIRCUIT_FAILURES: '1', CIRCUIT_COOLDOWN_MS: '200' })
    expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(502)
    expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(503)
    await Bun.sleep(250)
    // The probe: the backend is still down.
    expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(502)
    expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(503)
    expect(gw.logs.filter((l) => l.msg === 'Upstream instance ejected after consecutive failures')).toHaveLength(1)
  })

  test('CIRCUIT_FAILURES=0 never ejects', async () => {
    const gw = await gateway({ X_URL: closedUrl, CIRCUIT_FAILURES: '0' })
    for (let i = 0; i < 8; i++) expect((await fetch(`${gw.url}/api/v1/x/ok`)).status).toBe(502)
  })
})

describe('HITL answers through the same machinery', () => {
  test('an answer is retried when the hitl instance could not be reached, with the same Idempotency-Key; not after it reached one', async () => {
    const hitl = startBackend(() => Response.json({ ok: true }))
    try {
      const gw = await gateway({ HITL_URL: `${closedUrl},${hitl.url}`, CIRCUIT_FAILURES: '0' })
      for (let i = 0; i < 4; i++) {
        const question = `q-${i}`
        expect((await publish(gw.url, 'alice', { event_type: 'question', data: { question_id: question } })).status).toBe(202)
        const answer = await fetch(`${gw.url}/api/v1/events/alice/response`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ question_id: question, response: 'yes' }),
        })
        expect(answer.status).toBe(200)
        expect(hitl.seen.at(-1)!.headers.get('idempotency-key')).toBe(`alice:${question}`)
      }

      const reached = await gateway({ HITL_URL: `${resetting.url},${hitl.url}`, CIRCUIT_FAILURES: '0' })
      const statuses = new Set<number>()
      for (let i = 0; i < 16; i++) {
        await publish(reached.url, 'bob', { event_type: 'question', data: { question_id: `r-${i}` } })
        const answer = await fetch(`${reached.url}/api/v1/events/bob/response`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ question_id: `r-${i}`, response: 'yes' }),
        })
        statuses.add(answer.status)
      }
      expect(statuses).toEqual(new Set([200, 502]))
      expect(await waitFor(() => resetting.connections() > 0)).toBe(true)
    } finally {
      hitl.stop()
    }
  })
})
