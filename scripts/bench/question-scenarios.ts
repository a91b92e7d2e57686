/**
 * Questions (README, "Benchmarks"): answers per second with an answer schema against the same
 * answers without one, in interleaved rounds; ten thousand questions whose deadlines fall in
 * the same second, and how soon after it `hitl` has every expiry, with the embedded broker and
 * with Redis; and the memory each pending question costs (the gateway's RSS, and Redis's
 * `used_memory`).
 */
import type { Subprocess } from 'bun'
import { CLIENT_CORE, SERVER_CORE, freePort, rssBytes, spawnPinned, stop, waitForHttp, waitForRedis } from './processes'

const ROOT = new URL('../..', import.meta.url).pathname
/** The demo's question: three properties, two required, one enum. */
const SCHEMA = {
  type: 'object',
  properties: { approve: { type: 'boolean' }, environment: { enum: ['staging', 'production'] }, note: { type: 'string', maxLength: 200 } },
  required: ['approve', 'environment'],
  additionalProperties: false,
}

export interface AnswerRound {
  round: number
  schema: boolean
  answers: number
  seconds: number
  perSecond: number
  /** Answers that did not get 200 from the gateway. */
  failed: number
}

export interface ExpiryRun {
  broker: 'memory' | 'redis'
  questions: number
  /** Distinct expiries hitl received, and all its POSTs (a repeat would show here). */
  delivered: number
  posts: number
  /** From the shared deadline to the last expiry's arrival at hitl. */
  lastAfterDeadlineMs: number
  firstAfterDeadlineMs: number
  /** The gateway's RSS growth per pending question, measured before the deadline. */
  gatewayBytesPerQuestion: number
  /** Redis's `used_memory` growth per pending question (Redis only). */
  redisBytesPerQuestion: number | null
}

export interface QuestionOptions {
  binary: string
  rounds: number
  answers: number
  expiries: number
  concurrency: number
}

export async function runQuestionScenarios(options: QuestionOptions, log: (line: string) => void): Promise<{ answers: AnswerRound[]; expiries: ExpiryRun[] }> {
  const hitlPort = await freePort()
  const hitl = spawnPinned(CLIENT_CORE, ['bun', `${ROOT}scripts/bench/hitl-recorder.ts`, String(hitlPort)], {}, 'ignore')
  const hitlUrl = `http://127.0.0.1:${hitlPort}`
  const redisPort = await freePort()
  const redis = spawnPinned(SERVER_CORE, ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, 'ignore')
  const answers: AnswerRound[] = []
  const expiries: ExpiryRun[] = []
  try {
    await waitForHttp(hitlUrl)
    for (let round = 1; round <= options.rounds; round++) {
      for (const schema of [false, true]) {
        const result = await answerRound(options, hitlUrl, schema)
        answers.push({ round, schema, ...result })
        log(`  round ${round} answers ${schema ? 'with a schema   ' : 'without a schema'}: ${Math.round(result.perSecond)}/s (${result.answers} in ${result.seconds.toFixed(2)} s${result.failed ? `, ${result.failed} failed` : ''})`)
      }
    }
    for (const broker of ['memory', 'redis'] as const) {
      const env: Record<string, string> = broker === 'redis' ? { REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: 'bench-questions:' } : {}
      const run = await expiryRun(options, hitlUrl, broker, env, redisPort)
      expiries.push(run)
      log(
        `  ${broker}: ${run.delivered} of ${run.questions} expiries at hitl (${run.posts} POSTs), the last ${run.lastAfterDeadlineMs} ms after the shared deadline (first ${run.firstAfterDeadlineMs} ms); ` +
          `${(run.gatewayBytesPerQuestion / 1024).toFixed(2)} KiB of gateway RSS per pending question${run.redisBytesPerQuestion === null ? '' : `, ${(run.redisBytesPerQuestion / 1024).toFixed(2)} KiB of Redis memory`}`,
      )
    }
  } finally {
    await stop(hitl)
    await stop(redis)
  }
  return { answers, expiries }
}

async function startGateway(binary: string, hitlUrl: string, env: Record<string, string>): Promise<{ url: string; gateway: Subprocess }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // LOG_LEVEL info: every close writes its audit line, as in production.
  const gateway = spawnPinned(SERVER_CORE, [binary], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', RATE_LIMIT: '0', HITL_URL: hitlUrl, ...env }, 'ignore')
  await waitForHttp(`${url}/health`)
  if (env.REDIS_URL) await waitForRedis(url)
  return { url, gateway }
}

/** Runs the load client: `count` POSTs of `mode` for clients `<prefix><i>`. */
async function load(mode: 'ask' | 'answer', url: string, count: number, concurrency: number, prefix: string, question: object): Promise<{ seconds: number; statuses: Record<string, number> }> {
  const client = spawnPinned(CLIENT_CORE, ['bun', `${ROOT}scripts/bench/question-load.ts`, mode, url, String(count), String(concurrency), prefix, JSON.stringify(question)])
  const output = await new Response(client.stdout as ReadableStream).text()
  if ((await client.exited) !== 0) throw new Error(`the question load client failed: ${output}`)
  return JSON.parse(output)
}

async function answerRound(options: QuestionOptions, hitlUrl: string, schema: boolean) {
  const { url, gateway } = await startGateway(options.binary, hitlUrl, {})
  try {
    const question = schema ? { response_schema: SCHEMA } : {}
    const asked = await load('ask', url, options.answers, options.concurrency, 'answerer-', question)
    if ((asked.statuses['202'] ?? 0) !== options.answers) throw new Error(`asking answered ${JSON.stringify(asked.statuses)}`)
    const answered = await load('answer', url, options.answers, options.concurrency, 'answerer-', question)
    return { answers: options.answers, seconds: answered.seconds, perSecond: options.answers / answered.seconds, failed: options.answers - (answered.statuses['200'] ?? 0) }
  } finally {
    await stop(gateway)
  }
}

async function expiryRun(options: QuestionOptions, hitlUrl: string, broker: 'memory' | 'redis', env: Record<string, string>, redisPort: number): Promise<ExpiryRun> {
  await fetch(hitlUrl, { method: 'DELETE' })
  const { url, gateway } = await startGateway(options.binary, hitlUrl, env)
  try {
    await Bun.sleep(300)
    const rssBefore = rssBytes(gateway.pid)
    const redisBefore = broker === 'redis' ? await redisUsedMemory(redisPort) : 0
    // The shared deadline: far enough ahead that every question is asked before it.
    const deadline = Date.now() + 10_000
    const asked = await load('ask', url, options.expiries, options.concurrency, `expiring-${broker}-`, { response_schema: SCHEMA, expires_at: new Date(deadline).toISOString(), default_response: { approve: false, environment: 'staging' } })
    if ((asked.statuses['202'] ?? 0) !== options.expiries) throw new Error(`asking answered ${JSON.stringify(asked.statuses)}`)
    if (Date.now() > deadline - 1_000) throw new Error('asking took too long: the deadline came before every question was pending')
    await Bun.sleep(500)
    const gatewayBytesPerQuestion = (rssBytes(gateway.pid) - rssBefore) / options.expiries
    const redisBytesPerQuestion = broker === 'redis' ? ((await redisUsedMemory(redisPort)) - redisBefore) / options.expiries : null
    let stats = { posts: 0, distinct: 0, first: 0, last: 0 }
    while (Date.now() < deadline + 30_000) {
      stats = (await (await fetch(hitlUrl)).json()) as typeof stats
      if (stats.distinct >= options.expiries) break
      await Bun.sleep(100)
    }
    // Repeats, if any, would arrive after the last first delivery: give them a moment.
    await Bun.sleep(1_000)
    stats = (await (await fetch(hitlUrl)).json()) as typeof stats
    return {
      broker,
      questions: options.expiries,
      delivered: stats.distinct,
      posts: stats.posts,
      lastAfterDeadlineMs: stats.last - deadline,
      firstAfterDeadlineMs: stats.first - deadline,
      gatewayBytesPerQuestion,
      redisBytesPerQuestion,
    }
  } finally {
    await stop(gateway)
  }
}

async function redisUsedMemory(port: number): Promise<number> {
  const info = await Bun.$`redis-cli -p ${port} INFO memory`.text()
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)
}
