/**
 * A real browser (Debian's Chromium, headless, driven by playwright-core) runs examples/hitl.html
 * from another origin: EventSource, a question answered with a cross-origin fetch, then a cut
 * stream and the browser's own reconnect with Last-Event-ID.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { type Browser, type Page, chromium } from 'playwright-core'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { publish } from '../helpers/sse-client'
import { type TcpRelay, startTcpRelay } from '../helpers/tcp-relay'

const EXAMPLE = new URL('../../examples/hitl.html', import.meta.url).pathname
const CLIENT = 'browser-user'

let hitl: MockBackend
let gw: RunningGateway
let relay: TcpRelay
let site: Server<unknown>
let browser: Browser
let page: Page

interface SeenEvent {
  id: string
  event_type: string
  envelope: { id: string; data: Record<string, unknown> }
}

const seenEvents = () => page.evaluate(() => (window as unknown as { hitl: { events: SeenEvent[] } }).hitl.events)

async function waitForEvent(match: (e: SeenEvent) => boolean, timeoutMs = 10_000): Promise<SeenEvent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = (await seenEvents()).find(match)
    if (found) return found
    if (Date.now() > deadline) throw new Error(`browser saw: ${JSON.stringify((await seenEvents()).map((e) => e.event_type))}`)
    await Bun.sleep(50)
  }
}

beforeAll(async () => {
  hitl = startBackend(() => Response.json({ ok: true }))
  gw = await startGateway({ HITL_URL: hitl.url, RATE_LIMIT: '0' })
  relay = await startTcpRelay(gw.port)
  // The page comes from another origin (another port), so the answer is a cross-origin fetch.
  site = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response(Bun.file(EXAMPLE), { headers: { 'content-type': 'text/html' } }) })
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${site.port}/hitl.html?gateway=http://127.0.0.1:${relay.port}&client=${CLIENT}`)
}, 30_000)

afterAll(async () => {
  await browser?.close()
  relay?.close()
  site?.stop(true)
  await gw?.stop()
  hitl?.stop()
})

test('the browser receives a question, answers it cross-origin, and sees question.answered', async () => {
  await waitForEvent((e) => e.event_type === 'connection.established')
  const asked = await publish(gw.url, CLIENT, { event_type: 'question', data: { question_id: 'deploy-1', prompt: 'Deploy to production?' } })
  expect(asked.body.delivered).toBe(1)
  const form = page.locator('form[data-question-id="deploy-1"]')
  await form.waitFor({ timeout: 10_000 })
  expect(await form.locator('p').first().textContent()).toBe('Deploy to production?')
  await form.locator('input').fill('yes, ship it')
  await form.locator('button').click()
  const answered = await waitForEvent((e) => e.event_type === 'question.answered')
  expect(answered.envelope.data).toEqual({ question_id: 'deploy-1' })
  const call = hitl.seen.at(-1)!
  expect(JSON.parse(call.body)).toEqual({ question_id: 'deploy-1', response: 'yes, ship it', client_id: CLIENT, status: 'answered', subject: null })
  expect(call.headers.get('idempotency-key')).toBe(`${CLIENT}:deploy-1`)
  await form.waitFor({ state: 'detached', timeout: 5_000 })
}, 30_000)

test("after a cut, the browser's own reconnect (with Last-Event-ID) receives what was published during the gap, once each", async () => {
  const lastBeforeCut = (await seenEvents()).filter((e) => e.id !== '').at(-1)!
  relay.severAll()
  const missed = []
  for (const step of [1, 2]) missed.push((await publish(gw.url, CLIENT, { event_type: 'run.progress', data: { step } })).body.id as string)
  for (const id of missed) await waitForEvent((e) => e.id === id, 20_000)
  const events = await seenEvents()
  for (const id of missed) expect(events.filter((e) => e.id === id)).toHaveLength(1)
  expect(events.filter((e) => e.event_type === 'connection.established')).toHaveLength(2)
  // The reconnect was the browser's, carrying the id of the last event it had seen.
  const reopened = gw.logs.filter((l) => l.msg === 'Event stream opened' && l.client_id === CLIENT)
  expect(reopened.at(-1)!.last_event_id).toBe(lastBeforeCut.id)
}, 40_000)
