import { afterEach, describe, expect, test } from 'bun:test'
import { loadConfig } from '../../src/config/settings'
import { createEnvelope } from '../../src/events/envelope'
import { Hub } from '../../src/events/hub'
import { MemoryBroker } from '../../src/events/memory-broker'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { envelopeOf } from '../helpers/sse-client'

let now = 1_000_000
const closers: (() => void)[] = []

function broker(env: Record<string, string> = {}): MemoryBroker {
  const config = loadConfig(env).events
  const metrics = new Metrics()
  const hub = new Hub(config.heartbeatMs, config.buffer, metrics, createLogger('silent'))
  const sink = { published: () => {}, closed: () => {} }
  const memory = new MemoryBroker({ hub, config, metrics, sink, deliver: async () => 'delivered', gaveUp: () => {}, now: () => now })
  closers.push(() => (hub.stop(), memory.close()))
  return memory
}

afterEach(() => {
  for (const close of closers.splice(0)) close()
})

const question = (questionId: string) => createEnvelope('question', { question_id: questionId })
const questionSpec = (questionId: string) => ({ questionId, required: null, deadline: null, hasDefault: false, defaultResponse: undefined, schema: null })

describe('the embedded broker', () => {
  test('an event is retained for a client that is not connected, and replayed after its id', async () => {
    const memory = broker()
    const first = createEnvelope('step', { n: 1 })
    const second = createEnvelope('step', { n: 2 })
    expect(await memory.publish(['offline'], first)).toEqual({ delivered: 0, duplicate: false })
    await memory.publish(['offline'], second)
    const afterFirst = await memory.retainedAfter('offline', first.id)
    expect({ gap: afterFirst.gap, events: afterFirst.events.map(envelopeOf) }).toEqual({ gap: false, events: [second] })
    const afterGone = await memory.retainedAfter('offline', 'gone')
    expect({ gap: afterGone.gap, events: afterGone.events.map(envelopeOf) }).toEqual({ gap: true, events: [first, second] })
  })

  test('every replay hands out the frame made at publish: streams share its bytes', async () => {
    const memory = broker()
    await memory.publish(['alice'], createEnvelope('step', { n: 1 }))
    await memory.ask(['alice'], questionSpec('shared'), question('shared'))
    const [first, second] = [await memory.retainedAfter('alice', '0'), await memory.retainedAfter('alice', '0')]
    expect(first.events).toHaveLength(2)
    first.events.forEach((event, i) => expect(event.frame).toBe(second.events[i]!.frame))
    expect((await memory.pendingQuestions('alice'))[0]!.frame).toBe(first.events[1]!.frame)
  })

  test("a publisher's id that the client already retains is a duplicate, not a second event", async () => {
    const memory = broker()
    const event = createEnvelope('step', {}, 'publisher-1')
    await memory.publish(['alice'], event, true)
    expect(await memory.publish(['alice'], createEnvelope('step', {}, 'publisher-1'), true)).toEqual({ delivered: 0, duplicate: true })
    expect((await memory.retainedAfter('alice', '0')).events).toHaveLength(1)
  })

  test('the sweep drops client state once nothing in it is retained any more', async () => {
    const memory = broker({ SSE_HISTORY_TTL_MS: '50', QUESTION_TTL_MS: '50' })
    for (let i = 0; i < 100; i++) await memory.publish([`transient-${i}`], createEnvelope('x', {}))
    await memory.ask(['transient-q'], questionSpec('q'), question('q'))
    expect(memory.trackedClients).toBe(101)
    memory.sweep()
    expect(memory.trackedClients).toBe(101)
    now += 100
    memory.sweep()
    expect(memory.trackedClients).toBe(0)
  })
})
