/**
 * examples/hitl.html in a real browser (headless Chromium through playwright-core) with
 * authentication on: the page subscribes with its token and answers; once with the token in the
 * page's URL (EventSource's access_token query parameter, Bearer for the answer), once with an
 * HttpOnly cookie that an operator's login would have set, sent cross-origin with credentials.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { type Browser, type Page, chromium } from 'playwright-core'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { publish } from '../helpers/sse-client'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'

const EXAMPLE = new URL('../../examples/hitl.html', import.meta.url).pathname

let hitl: MockBackend
let gw: RunningGateway
let site: Server<unknown>
let browser: Browser

interface PageState {
  events: { event_type: string; envelope: { data: Record<string, unknown> } }[]
}

beforeAll(async () => {
  hitl = startBackend(() => Response.json({ ok: true }))
  site = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response(Bun.file(EXAMPLE), { headers: { 'content-type': 'text/html' } }) })
  // Cookies cross origins only to a listed origin (with Access-Control-Allow-Credentials).
  gw = await startGateway({ AUTH_JWT_SECRET: TEST_SECRET, HITL_URL: hitl.url, RATE_LIMIT: '0', CORS_ORIGINS: `http://127.0.0.1:${site.port}` })
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}, 30_000)

afterAll(async () => {
  await browser?.close()
  site?.stop(true)
  await gw?.stop()
  hitl?.stop()
})

const pageUrl = (client: string, extra: string) => `http://127.0.0.1:${site.port}/hitl.html?gateway=${gw.url}&client=${client}${extra}`
const statusOf = (page: Page) => page.locator('#status').textContent()

async function waitForEventType(page: Page, type: string): Promise<PageState['events'][number]> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const events = await page.evaluate(() => (window as unknown as { hitl: PageState }).hitl.events)
    const found = events.find((e) => e.event_type === type)
    if (found) return found
    if (Date.now() > deadline) throw new Error(`the page saw ${JSON.stringify(events.map((e) => e.event_type))}, status ${await statusOf(page)}`)
    await Bun.sleep(50)
  }
}

/** The page gets a question, a person answers it, and the hitl service hears it with X-Auth-Subject. */
async function answerOnPage(page: Page, client: string, questionId: string): Promise<void> {
  await waitForEventType(page, 'connection.established')
  expect((await publish(gw.url, client, { event_type: 'question', data: { question_id: questionId, prompt: 'Ship it?' } })).body.delivered).toBe(1)
  const form = page.locator(`form[data-question-id="${questionId}"]`)
  await form.waitFor({ timeout: 10_000 })
  await form.locator('input').fill('yes')
  await form.locator('button').click()
  expect((await waitForEventType(page, 'question.answered')).envelope.data).toEqual({ question_id: questionId })
  const call = hitl.seen.at(-1)!
  expect(call.headers.get('x-auth-subject')).toBe(client)
  expect(JSON.parse(call.body)).toEqual({ question_id: questionId, response: 'yes', client_id: client, status: 'answered', subject: client })
}

test('with its token in the page URL, the page subscribes (access_token) and answers (Bearer)', async () => {
  const token = await hs256Token(TEST_SECRET, { claims: { sub: 'carol' } })
  const page = await browser.newPage()
  try {
    await page.goto(pageUrl('carol', `&token=${token}`))
    await answerOnPage(page, 'carol', 'q-token')
  } finally {
    await page.close()
  }
}, 30_000)

test('with an HttpOnly cookie from a login, the page subscribes and answers cross-origin with credentials', async () => {
  const token = await hs256Token(TEST_SECRET, { claims: { sub: 'dave' } })
  const context = await browser.newContext()
  await context.addCookies([{ name: 'access_token', value: token, domain: '127.0.0.1', path: '/', httpOnly: true, sameSite: 'Lax' }])
  const page = await context.newPage()
  try {
    await page.goto(pageUrl('dave', '&credentials=include'))
    await answerOnPage(page, 'dave', 'q-cookie')
  } finally {
    await context.close()
  }
}, 30_000)

test("a page holding someone else's token is refused (403), and the browser stops trying", async () => {
  const token = await hs256Token(TEST_SECRET, { claims: { sub: 'mallory' } })
  const page = await browser.newPage()
  try {
    await page.goto(pageUrl('carol', `&token=${token}`))
    const deadline = Date.now() + 10_000
    while ((await statusOf(page)) !== 'closed' && Date.now() < deadline) await Bun.sleep(50)
    expect(await statusOf(page)).toBe('closed')
    const refused = gw.logs.filter((l) => l.status === 403 && typeof l.path === 'string' && l.path === '/api/v1/events/carol')
    expect(refused.length).toBeGreaterThan(0)
  } finally {
    await page.close()
  }
}, 30_000)
