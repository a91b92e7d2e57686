/**
 * The one state machine of questions (src/events/questions.ts), run against both brokers: the
 * embedded one, and the Redis one as two gateways sharing a real redis-server, each step taken
 * on whichever gateway the test names. Every transition and refusal of README "Questions" is
 * asked of both in the same words.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { joinCluster } from '../../src/cluster/cluster'
import { loadConfig } from '../../src/config/settings'
import type { Broker } from '../../src/events/broker'
import { createEnvelope } from '../../src/events/envelope'
import type { DeliveryAttempt } from '../../src/events/hitl'
import { Hub } from '../../src/events/hub'
import { MemoryBroker } from '../../src/events/memory-broker'
import type { ExpiryDelivery, QuestionClosure, QuestionSpec, RecordedAnswer } from '../../src/events/questions'
import { RedisBroker } from '../../src/events/redis-broker'
import { GatewayError } from '../../src/http/errors'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { type TestRedis, startRedis } from '../helpers/redis'
import { envelopeOf } from '../helpers/sse-client'
import { waitFor } from '../helpers/wait'

/** What a broker tells the gateway around it: closures, and expiries POSTed to hitl. */
interface Recorder {
  closures: QuestionClosure[]
  deliveries: ExpiryDelivery[]
  published: number
  /** What the next delivery attempts answer (then 'delivered'). */
  failNext: DeliveryAttempt[]
}

interface Pair {
  /** Two gateways' brokers; for the embedded broker, the same one twice. */
  a: Broker
  b: Broker
  hubA: Hub
  recorder: Recorder
}

let redis: TestRedis
let prefixes = 0
const closers: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})
afterAll(async () => {
  await redis.stop()
})

function recorder(): Recorder {
  return { closures: [], deliveries: [], published: 0, failNext: [] }
}

function hooks(rec: Recorder) {
  return {
    sink: { published: () => rec.published++, closed: (closure: QuestionClosure) => rec.closures.push(closure) },
    deliver: async (delivery: ExpiryDelivery): Promise<DeliveryAttempt> => {
      rec.deliveries.push(delivery)
      return rec.failNext.shift() ?? 'delivered'
    },
    gaveUp: () => {},
  }
}

async function memoryPair(env: Record<string, string>): Promise<Pair> {
  const config = loadConfig(env).events
  const metrics = new Metrics()
  const hub = new Hub(config.heartbeatMs, config.buffer, metrics, createLogger('silent'))
  const rec = recorder()
  const broker = new MemoryBroker({ hub, config, metrics, ...hooks(rec) })
  closers.push(() => (hub.stop(), broker.close()))
  return { a: broker, b: broker, hubA: hub, recorder: rec }
}

async function redisPair(env: Record<string, string>): Promise<Pair> {
  // Each test its own keys: nothing one leaves behind is read by the next.
  const prefix = `states${prefixes++}:`
  const rec = recorder()
  const one = async () => {
    const config = loadConfig({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...env })
    const metrics = new Metrics()
    const logger = createLogger('silent')
    const hub = new Hub(config.events.heartbeatMs, config.events.buffer, metrics, logger)
    const cluster = joinCluster(config, hub, logger, metrics)!
    const broker = new RedisBroker({
      hub,
      config: config.events,
      link: cluster.link,
      presence: cluster.presence,
      prefix,
      metrics,
      logger,
      ...hooks(rec),
      leaseMs: () => 10_000,
    })
    closers.push(async () => {
      hub.stop()
      await broker.close()
    })
    expect(await waitFor(() => cluster.link.isUp, 10_000)).toBe(true)
    return { hub, broker }
  }
  const [first, second] = [await one(), await one()]
  return { a: first.broker, b: second.broker, hubA: first.hub, recorder: rec }
}

const spec = (questionId: string, rules: Partial<Omit<QuestionSpec, 'clientIds' | 'questionId'>> = {}): Omit<QuestionSpec, 'clientIds'> => ({
  questionId,
  required: null,
  deadline: null,
  hasDefault: false,
  defaultResponse: undefined,
  schema: null,
  ...rules,
})

const questionEvent = (questionId: string) => createEnvelope('question', { question_id: questionId, prompt: 'Deploy?' })

const by = (clientId: string, response: unknown = true, subject: string | null = null): RecordedAnswer => ({
  client_id: clientId,
  subject,
  response,
  answered_at: new Date().toISOString(),
})

for (const [kind, makePair] of [
  ['embedded', memoryPair],
  ['Redis, two gateways', redisPair],
] as const) {
  describe(`questions, ${kind}`, () => {
    test('pending → held → answered; a second answer while held or after is already_answered; a failed forward makes it pending again', async () => {
      const { a, b, recorder: rec } = await makePair({})
      await a.ask(['alice'], spec('q1', { schema: { type: 'boolean' } }), questionEvent('q1'))
      expect(rec.published).toBe(1)
      expect(await b.lookupQuestion('alice', 'q1')).toEqual({ kind: 'pending', schema: { type: 'boolean' } })
      const held = await a.answer('alice', 'q1', by('alice'))
      expect(held).toMatchObject({ kind: 'forward', approvals: false })
      expect(await b.answer('alice', 'q1', by('alice'))).toEqual({ kind: 'answered' })
      expect(await b.lookupQuestion('alice', 'q1')).toEqual({ kind: 'answered' })
      await a.settle('alice', 'q1', (held as { hold: string }).hold, false)
      expect(await b.lookupQuestion('alice', 'q1')).toMatchObject({ kind: 'pending' })
      const again = await b.answer('alice', 'q1', by('alice', false))
      expect(again).toMatchObject({ kind: 'forward' })
      // A settle with a hold that is not the current one changes nothing.
      await a.settle('alice', 'q1', 'not-the-hold', true)
      expect(await a.lookupQuestion('alice', 'q1')).toEqual({ kind: 'answered' })
      await b.settle('alice', 'q1', (again as { hold: string }).hold, true)
      expect(await a.answer('alice', 'q1', by('alice'))).toEqual({ kind: 'answered' })
      expect(await a.pendingQuestions('alice')).toEqual([])
      expect(await a.listQuestions('alice')).toEqual([])
      expect(await a.answer('bob', 'q1', by('bob'))).toEqual({ kind: 'unknown' })
      expect(rec.closures).toEqual([{ outcome: 'answered', questionId: 'q1', clientIds: ['alice'], subjects: [], openMs: expect.any(Number) }])
    })

    test('a broadcast without required asks each listed client their own question', async () => {
      const { a, b } = await makePair({})
      await a.ask(['c1', 'c2'], spec('own'), questionEvent('own'))
      const first = await b.answer('c1', 'own', by('c1'))
      expect(first).toMatchObject({ kind: 'forward', approvals: false })
      await b.settle('c1', 'own', (first as { hold: string }).hold, true)
      expect(await a.lookupQuestion('c2', 'own')).toMatchObject({ kind: 'pending' })
    })

    test('approvals: recorded until required; one vote per client and per subject; the completing answer carries every response; a failed forward un-records it', async () => {
      const { a, b, recorder: rec } = await makePair({})
      await a.ask(['ann', 'ben', 'cat', 'dan'], spec('deploy', { required: 3 }), questionEvent('deploy'))
      expect(rec.published).toBe(1)
      expect(await a.answer('ann', 'deploy', by('ann', 'yes', 'sub-ann'))).toEqual({ kind: 'recorded', recorded: 1, required: 3 })
      // The same person again: under their own id, or another id with the same token subject.
      expect(await b.answer('ann', 'deploy', by('ann', 'yes', 'sub-ann'))).toEqual({ kind: 'answered' })
      expect(await b.answer('dan', 'deploy', by('dan', 'yes', 'sub-ann'))).toEqual({ kind: 'answered' })
      // Recorded: no longer pending for that approver, still for the others.
      expect(await a.listQuestions('ann')).toEqual([])
      expect((await b.listQuestions('cat'))[0]).toMatchObject({ question_id: 'deploy', required: 3, recorded: 1, expires_at: null })
      expect(await b.answer('ben', 'deploy', by('ben', 'yes', 'sub-ben'))).toEqual({ kind: 'recorded', recorded: 2, required: 3 })
      const completing = await a.answer('cat', 'deploy', by('cat', 'no', 'sub-cat'))
      expect(completing).toMatchObject({ kind: 'forward', approvals: true })
      const responses = (completing as { responses: RecordedAnswer[] }).responses
      expect(responses.map((r) => [r.client_id, r.subject, r.response])).toEqual([
        ['ann', 'sub-ann', 'yes'],
        ['ben', 'sub-ben', 'yes'],
        ['cat', 'sub-cat', 'no'],
      ])
      // The race for the last place: decided once.
      expect(await b.answer('dan', 'deploy', by('dan', 'yes', 'sub-dan'))).toEqual({ kind: 'answered' })
      await a.settle('cat', 'deploy', (completing as { hold: string }).hold, false)
      // Not recorded: cat may answer again, and so may dan.
      expect((await b.listQuestions('cat'))[0]).toMatchObject({ recorded: 2 })
      const last = await b.answer('dan', 'deploy', by('dan', 'yes', 'sub-dan'))
      expect(last).toMatchObject({ kind: 'forward', approvals: true })
      await b.settle('dan', 'deploy', (last as { hold: string }).hold, true)
      for (const approver of ['ann', 'ben', 'cat', 'dan']) expect(await a.lookupQuestion(approver, 'deploy')).toEqual({ kind: 'answered' })
      expect(rec.closures).toEqual([{ outcome: 'answered', questionId: 'deploy', clientIds: ['ann', 'ben', 'cat', 'dan'], subjects: ['sub-ann', 'sub-ben', 'sub-dan'], openMs: expect.any(Number) }])
    })

    test('an approval whose id is pending for one of its approvers is refused; nothing is published', async () => {
      const { a, b } = await makePair({})
      await a.ask(['pat'], spec('dup'), questionEvent('dup'))
      const refused = await b.ask(['quinn', 'pat'], spec('dup', { required: 1 }), questionEvent('dup')).catch((error: unknown) => error)
      expect(refused).toBeInstanceOf(GatewayError)
      expect((refused as GatewayError).code).toBe('bad_request')
      expect(await a.lookupQuestion('quinn', 'dup')).toEqual({ kind: 'unknown' })
    })

    test('cancel: closed for every client, then closed; unknown stays unknown; a held question waits for its forward', async () => {
      const { a, b, recorder: rec } = await makePair({})
      await a.ask(['r1', 'r2'], spec('withdrawn', { required: 2 }), questionEvent('withdrawn'))
      expect(await b.cancel('r1', 'withdrawn')).toBe('cancelled')
      expect(await a.cancel('r2', 'withdrawn')).toBe('closed')
      expect(await a.answer('r2', 'withdrawn', by('r2'))).toEqual({ kind: 'closed' })
      expect(await a.lookupQuestion('r1', 'withdrawn')).toEqual({ kind: 'closed' })
      expect(await b.cancel('r1', 'never-asked')).toBe('unknown')
      expect(rec.closures.map((c) => c.outcome)).toEqual(['cancelled'])

      await a.ask(['s1'], spec('busy'), questionEvent('busy'))
      const held = (await a.answer('s1', 'busy', by('s1'))) as { hold: string }
      expect(await b.cancel('s1', 'busy')).toBe('held')
      await a.settle('s1', 'busy', held.hold, true)
      expect(await b.cancel('s1', 'busy')).toBe('closed')
      expect(rec.deliveries).toEqual([])
    })

    test('the deadline expires a question within a second, and hitl is told once, with its default response', async () => {
      const { a, b, recorder: rec } = await makePair({})
      const deadline = Date.now() + 1_000
      await a.ask(['late'], spec('timed', { deadline, hasDefault: true, defaultResponse: { approved: false } }), questionEvent('timed'))
      expect((await b.listQuestions('late'))[0]).toMatchObject({ question_id: 'timed', expires_at: new Date(deadline).toISOString(), required: null, recorded: null })
      expect(await waitFor(() => rec.deliveries.length > 0, 5_000)).toBe(true)
      expect(Date.now() - deadline).toBeLessThan(1_000)
      expect(await b.answer('late', 'timed', by('late'))).toEqual({ kind: 'closed' })
      expect(await a.pendingQuestions('late')).toEqual([])
      expect(rec.deliveries).toEqual([
        { key: 'late:timed', questionId: 'timed', body: { question_id: 'timed', client_id: 'late', status: 'expired', response: { approved: false } }, giveUpAt: expect.any(Number) },
      ])
      await Bun.sleep(600)
      expect(rec.deliveries).toHaveLength(1)
      expect(rec.closures.map((c) => [c.outcome, c.questionId])).toEqual([['expired', 'timed']])
    })

    test('an approval expires with the responses recorded so far and no client_id; a failed POST is retried', async () => {
      const { a, recorder: rec } = await makePair({})
      rec.failNext.push('retry')
      await a.ask(['v1', 'v2'], spec('vote', { required: 2, deadline: Date.now() + 1_000 }), questionEvent('vote'))
      await a.answer('v1', 'vote', by('v1', 'yes', 'sub-v1'))
      expect(await waitFor(() => rec.deliveries.length >= 2, 6_000)).toBe(true)
      const [first, retried] = rec.deliveries
      expect(retried).toEqual(first!)
      expect(first!.key).toBe('approvals/vote')
      expect(first!.body).toEqual({ question_id: 'vote', status: 'expired', responses: [expect.objectContaining({ client_id: 'v1', subject: 'sub-v1', response: 'yes' })] })
    })

    test('a deadline reached while an answer is forwarded waits: a delivered answer wins, a failed one lets it expire', async () => {
      const { a, b, recorder: rec } = await makePair({})
      await a.ask(['h1'], spec('held-ok', { deadline: Date.now() + 1_000 }), questionEvent('held-ok'))
      await a.ask(['h2'], spec('held-fail', { deadline: Date.now() + 1_000 }), questionEvent('held-fail'))
      const ok = (await a.answer('h1', 'held-ok', by('h1'))) as { hold: string }
      const fail = (await b.answer('h2', 'held-fail', by('h2'))) as { hold: string }
      await Bun.sleep(1_600)
      expect(rec.deliveries).toEqual([])
      await a.settle('h1', 'held-ok', ok.hold, true)
      await b.settle('h2', 'held-fail', fail.hold, false)
      expect(await waitFor(() => rec.deliveries.length > 0, 3_000)).toBe(true)
      await Bun.sleep(300)
      expect(rec.deliveries.map((d) => d.questionId)).toEqual(['held-fail'])
      expect(await a.lookupQuestion('h1', 'held-ok')).toEqual({ kind: 'answered' })
      expect(await a.lookupQuestion('h2', 'held-fail')).toEqual({ kind: 'closed' })
      expect(rec.closures.map((c) => `${c.questionId}:${c.outcome}`).sort()).toEqual(['held-fail:expired', 'held-ok:answered'])
    })

    test('a question without a deadline leaves silently after QUESTION_TTL_MS: unknown, nothing sent', async () => {
      const { a, b, recorder: rec } = await makePair({ QUESTION_TTL_MS: '1000' })
      await a.ask(['ttl'], spec('short'), questionEvent('short'))
      expect(await b.lookupQuestion('ttl', 'short')).toMatchObject({ kind: 'pending' })
      await Bun.sleep(1_200)
      expect(await b.lookupQuestion('ttl', 'short')).toEqual({ kind: 'unknown' })
      expect(await a.answer('ttl', 'short', by('ttl'))).toEqual({ kind: 'unknown' })
      expect(rec.deliveries).toEqual([])
      expect(rec.closures).toEqual([])
    })

    test("asked again under its id: a client's own open question is replaced (its deadline does nothing); an approval or a held one is not; a retried publish is a no-op", async () => {
      const { a, b, recorder: rec } = await makePair({})
      await a.ask(['again'], spec('re', { deadline: Date.now() + 1_000 }), questionEvent('re'))
      await b.ask(['again'], spec('re'), questionEvent('re'))
      expect((await a.listQuestions('again')).map((v) => v.expires_at)).toEqual([null])
      const held = (await a.answer('again', 're', by('again'))) as { hold: string }
      await Bun.sleep(1_500)
      expect(rec.deliveries).toEqual([])
      const refusedHeld = await b.ask(['again'], spec('re'), questionEvent('re')).catch((error: unknown) => error)
      expect((refusedHeld as GatewayError).code).toBe('bad_request')
      await a.settle('again', 're', held.hold, true)
      expect(rec.closures.map((c) => c.outcome)).toEqual(['answered'])

      const approval = createEnvelope('question', { question_id: 'vote-again' }, 'publisher-vote-1')
      await a.ask(['w1', 'w2'], spec('vote-again', { required: 2 }), approval, true)
      await a.answer('w1', 'vote-again', by('w1'))
      // The publisher retries: the same id is a no-op, not a refusal.
      expect(await b.ask(['w1', 'w2'], spec('vote-again', { required: 2 }), createEnvelope('question', { question_id: 'vote-again' }, 'publisher-vote-1'), true)).toEqual({ delivered: 0, duplicate: true })
      // Another publish under the open approval's id is refused, even for the approver who voted, and as a single question.
      for (const [targets, required] of [[['w1', 'w3'], 1], [['w2'], null]] as const) {
        const refused = await b.ask(targets, spec('vote-again', { required }), questionEvent('vote-again')).catch((error: unknown) => error)
        expect((refused as GatewayError).code).toBe('bad_request')
      }
      expect((await a.listQuestions('w2'))[0]).toMatchObject({ question_id: 'vote-again', recorded: 1 })
      expect(rec.published).toBe(3)
    })

    test('listing: the pending questions, oldest first, as views', async () => {
      const { a, b } = await makePair({})
      const first = questionEvent('first')
      await a.ask(['lister'], spec('first'), first)
      await Bun.sleep(2)
      await b.ask(['lister'], spec('second'), questionEvent('second'))
      const views = await b.listQuestions('lister')
      expect(views.map((v) => v.question_id)).toEqual(['first', 'second'])
      expect(views[0]).toEqual({ question_id: 'first', event_id: first.id, data: first.data, created_at: expect.any(String), expires_at: null, required: null, recorded: null })
      expect((await a.pendingQuestions('lister')).map((f) => envelopeOf(f).data.question_id)).toEqual(['first', 'second'])
    })
  })
}
