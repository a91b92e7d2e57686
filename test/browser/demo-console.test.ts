/**
 * Real Chromium (headless, through playwright-core) drives `api-gateway demo`: starts a run
 * from the console, sees the question's form built from its schema (a switch, choices, a
 * field), sends an invalid answer and sees the gateway's refusal by the field, sends a valid
 * one and sees the run complete. The screenshot is kept in test-artifacts/.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { type Browser, type Page, chromium } from 'playwright-core'
import { type DemoProcess, startDemoProcess } from '../helpers/demo-process'
import { buildBinary } from '../helpers/gateway-process'

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname

let demo: DemoProcess
let browser: Browser
let page: Page

interface SeenEvent {
  event_type: string
  envelope: { data: Record<string, any> }
}

async function waitForEvent(eventType: string, timeoutMs = 10_000): Promise<SeenEvent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const events = await page.evaluate(() => (window as unknown as { hitl: { events: SeenEvent[] } }).hitl.events)
    const found = events.find((e) => e.event_type === eventType)
    if (found) return found
    if (Date.now() > deadline) throw new Error(`the page saw: ${JSON.stringify(events.map((e) => e.event_type))}`)
    await Bun.sleep(50)
  }
}

beforeAll(async () => {
  buildBinary()
  demo = await startDemoProcess()
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } })
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await demo?.stop()
})

test('the demo console: start a run, answer its schema-built form wrongly then rightly, the run completes', async () => {
  const failedRequests: string[] = []
  page.on('requestfailed', (request) => failedRequests.push(request.url()))
  await page.goto(demo.consoleUrl)
  await waitForEvent('connection.established')
  await page.getByRole('button', { name: 'Start an agent run' }).click()
  expect((await waitForEvent('run.progress')).envelope.data.pct).toBe(25)

  const form = page.locator('form.question')
  await form.waitFor({ timeout: 10_000 })
  // Built from the schema: the boolean a switch, the enum its choices, the string a field.
  await expect(form.locator('input[role="switch"]').count()).resolves.toBe(1)
  await expect(form.locator('input[type="radio"]').count()).resolves.toBe(2)
  await expect(form.getByText('production').count()).resolves.toBe(1)
  await expect(form.locator('input[type="text"][name="/note"]').count()).resolves.toBe(1)

  // No environment chosen: the gateway refuses (422) and the page says why, by the field.
  await form.locator('input[role="switch"]').check()
  await form.getByRole('button', { name: 'Send answer' }).click()
  await form.locator('.error', { hasText: "must have required property 'environment'" }).waitFor({ timeout: 5_000 })
  await expect(form.locator('fieldset[data-path="/environment"][data-invalid]').count()).resolves.toBe(1)

  await form.getByLabel('production').check()
  await form.locator('input[name="/note"]').fill('ship it')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: `${ARTIFACTS}demo-console-question.png`, fullPage: true })
  await form.getByRole('button', { name: 'Send answer' }).click()

  const completed = await waitForEvent('run.completed')
  expect(completed.envelope.data.outcome).toEqual({ approve: true, environment: 'production', note: 'ship it' })
  await waitForEvent('question.answered')
  await expect(page.locator('form.question').count()).resolves.toBe(0)
  await page.locator('#run-status', { hasText: 'completed' }).waitFor()
  await page.screenshot({ path: `${ARTIFACTS}demo-console.png`, fullPage: true })
  expect(await Bun.file(`${ARTIFACTS}demo-console.png`).exists()).toBe(true)
  expect(failedRequests).toEqual([])
}, 60_000)
