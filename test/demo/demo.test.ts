/**
 * `api-gateway demo` (README, "Demo"), the compiled binary: its console page at `/`, its echo
 * and agent services behind the gateway, a whole run answered over HTTP, and `/` staying 404
 * outside the demo.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startGateway } from '../helpers/gateway'
import { buildBinary } from '../helpers/gateway-process'
import { type DemoProcess, startDemoProcess } from '../helpers/demo-process'
import { openStream } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

let demo: DemoProcess
let base: string

beforeAll(async () => {
  buildBinary()
  demo = await startDemoProcess()
  base = demo.consoleUrl.replace(/\/$/, '')
}, 60_000)
afterAll(async () => {
  await demo.stop()
})

describe('api-gateway demo', () => {
  test('listens on 127.0.0.1 unless HOST is set, prints its URL, and serves the console at / with nothing from the network', async () => {
    expect(demo.consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect(await waitFor(() => demo.logs.some((line) => line.msg === 'api-gateway listening'))).toBe(true)
    expect(demo.logs.find((line) => line.msg === 'api-gateway listening')).toMatchObject({ host: '127.0.0.1', services: { echo: expect.any(String), agent: expect.any(String) } })
    const page = await fetch(demo.consoleUrl)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'")
    const html = await page.text()
    expect(html).toContain('window.GATEWAY_DEMO = {"dashboard":null}')
    // No CDN: nothing is loaded from another host.
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="(https?:)?\/\//)
  })

  test('echo answers with what reached it, Authorization and Cookie masked', async () => {
    const reply = await fetch(`${base}/api/v1/echo/items?a=1&a=2&b=x`, { method: 'PUT', headers: { authorization: 'Bearer secret-token', cookie: 'session=secret', 'x-custom': 'kept' }, body: 'hello' })
    const body = (await reply.json()) as any
    expect(body).toMatchObject({ method: 'PUT', path: '/items', query: { a: ['1', '2'], b: 'x' }, body: 'hello' })
    expect(body.headers.authorization).toBe('***')
    expect(body.headers.cookie).toBe('***')
    expect(body.headers['x-custom']).toBe('kept')
    expect(JSON.stringify(body)).not.toContain('secret')
  })

  test('a run: progress, a schema’d question with a deadline, a refused answer, then run.completed with the answer', async () => {
    const stream = await openStream(`${base}/api/v1/events/demo-http`)
    const started = await fetch(`${base}/api/v1/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: 'demo-http' }) })
    expect(started.status).toBe(202)
    const { run_id: runId } = (await started.json()) as { run_id: string }
    const progress = await stream.waitFor((e) => e.event === 'run.progress')
    expect(progress.data.data.run_id).toBe(runId)
    const question = await stream.waitFor((e) => e.event === 'question', 5_000)
    expect(question.data.data).toMatchObject({ question_id: `deploy-${runId}`, response_schema: { type: 'object' }, expires_in_ms: expect.any(Number) })
    const answer = (response: unknown) =>
      fetch(`${base}/api/v1/events/demo-http/response`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question_id: `deploy-${runId}`, response }) })
    expect((await answer({ approve: 'yes' })).status).toBe(422)
    // The agent is the hitl service: its outcome path cannot be reached around the gateway's checks, under either name.
    for (const path of ['/api/v1/agent/responses', '/api/v1/hitl/responses']) {
      const forged = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question_id: `deploy-${runId}`, status: 'answered', response: { approve: true, environment: 'production', forged: true } }) })
      expect({ path, status: forged.status }).toEqual({ path, status: 403 })
    }
    expect((await fetch(`${base}/api/v1/agent/other`, { method: 'POST', body: '{}' })).status).toBe(404)
    expect((await answer({ approve: true, environment: 'production' })).status).toBe(200)
    const completed = await stream.waitFor((e) => e.event === 'run.completed')
    expect(completed.data.data).toEqual({ run_id: runId, outcome: { approve: true, environment: 'production' }, expired: false, decided_by: null })
    stream.close()
  })

  test('outside the demo, / is 404', async () => {
    const gw = await startGateway()
    try {
      expect((await fetch(`${gw.url}/`)).status).toBe(404)
    } finally {
      await gw.stop()
    }
  })
})
