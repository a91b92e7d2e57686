/**
 * examples/agent-loop.ts runs against a real gateway: it publishes its progress and a question,
 * waits for the gateway's POST of the outcome, and resumes with the person's answer (or stops
 * on the default when the deadline passes).
 */
import { afterEach, expect, test } from 'bun:test'
import { closedPort } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { openStream } from '../helpers/sse-client'

const EXAMPLE = new URL('../../examples/agent-loop.ts', import.meta.url).pathname
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

async function agentWithGateway(env: Record<string, string> = {}): Promise<{ gw: RunningGateway; agent: ReturnType<typeof Bun.spawn>; output: () => Promise<string> }> {
  const agentPort = await closedPort()
  const gw = await startGateway({ HITL_URL: `http://127.0.0.1:${agentPort}`, RATE_LIMIT: '0' })
  const agent = Bun.spawn(['bun', EXAMPLE], { env: { PATH: process.env.PATH!, GATEWAY_URL: gw.url, CLIENT_ID: 'agent-user', AGENT_PORT: String(agentPort), ...env }, stdout: 'pipe', stderr: 'inherit' })
  cleanups.push(async () => {
    agent.kill()
    await gw.stop()
  })
  return { gw, agent, output: () => new Response(agent.stdout as ReadableStream).text() }
}

test('the agent asks, the answer reaches it through the gateway, and it resumes', async () => {
  const { gw, agent, output } = await agentWithGateway()
  const stream = await openStream(`${gw.url}/api/v1/events/agent-user?lastEventId=0`)
  const question = await stream.waitFor((e) => e.event === 'question', 10_000)
  const questionId = question.data.data.question_id as string
  const refused = await fetch(`${gw.url}/api/v1/events/agent-user/response`, { method: 'POST', body: JSON.stringify({ question_id: questionId, response: { proceed: 'sure' } }) })
  expect(refused.status).toBe(422)
  const answered = await fetch(`${gw.url}/api/v1/events/agent-user/response`, { method: 'POST', body: JSON.stringify({ question_id: questionId, response: { proceed: true } }) })
  expect(answered.status).toBe(200)
  expect((await stream.waitFor((e) => e.event === 'run.completed', 10_000)).data.data.outcome).toBe('applied')
  expect(await agent.exited).toBe(0)
  expect(await output()).toContain('{"proceed":true}')
  stream.close()
}, 30_000)

test('at the deadline the agent gets the default and stops', async () => {
  const { gw, agent } = await agentWithGateway({ DEADLINE_MS: '1000' })
  const stream = await openStream(`${gw.url}/api/v1/events/agent-user?lastEventId=0`)
  await stream.waitFor((e) => e.event === 'question.expired', 10_000)
  expect((await stream.waitFor((e) => e.event === 'run.completed', 10_000)).data.data).toMatchObject({ outcome: 'stopped', reason: 'no answer in time' })
  expect(await agent.exited).toBe(0)
  stream.close()
}, 30_000)
