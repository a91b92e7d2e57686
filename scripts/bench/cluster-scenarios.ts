/**
 * Cluster mode against the embedded default, in one run (README, "Benchmarks"):
 * - event delivery: events per second published through one gateway to 1,000 streams, with
 *   delivery latency, for the memory broker (one gateway holds every stream) and the Redis broker
 *   (the streams spread over two gateways, so most events cross Redis);
 * - proxy throughput with the Redis-backed rate limiter against the local one.
 * Every scenario runs in interleaved rounds so machine noise hits all of them alike.
 */
import type { Subprocess } from 'bun'
import { CLIENT_CORE, SERVER_CORE, freePort, pinned, spawnPinned, stop, waitForHttp, waitForRedis } from './processes'
import { type WrkResult, runWrk } from './wrk'

export interface EventRound {
  broker: 'memory' | 'redis'
  round: number
  streams: number
  eventsPerSecond: number
  accepted: number
  received: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export interface LimiterRound extends WrkResult {
  limiter: 'local' | 'redis'
  round: number
}

export interface ClusterOptions {
  binary: string
  rounds: number
  seconds: number
  streams: number
  publishers: number
  connections: number
}

export async function runClusterScenarios(options: ClusterOptions, log: (line: string) => void): Promise<{ events: EventRound[]; limiter: LimiterRound[] }> {
  const children: Subprocess[] = []
  const start = async (env: Record<string, string>) => {
    const port = await freePort()
    const child = spawnPinned(SERVER_CORE, [options.binary], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env }, 'ignore')
    children.push(child)
    const url = `http://127.0.0.1:${port}`
    await waitForHttp(`${url}/health`)
    if (env.REDIS_URL) await waitForRedis(url)
    return url
  }
  try {
    const redisPort = await freePort()
    children.push(spawnPinned(SERVER_CORE, ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, 'ignore'))
    const redisUrl = `redis://127.0.0.1:${redisPort}`
    const backendPort = await freePort()
    children.push(spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' }, 'ignore'))
    await waitForHttp(`http://127.0.0.1:${backendPort}/`)

    const eventsEnv = { RATE_LIMIT: '0' }
    const memory = await start(eventsEnv)
    const redisA = await start({ ...eventsEnv, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: 'bench-events:' })
    const redisB = await start({ ...eventsEnv, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: 'bench-events:' })
    const limiterEnv = { BENCH_URL: `http://127.0.0.1:${backendPort}`, RATE_LIMIT: '1000000000' }
    const local = await start(limiterEnv)
    const shared = await start({ ...limiterEnv, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: 'bench-limits:' })

    const events: EventRound[] = []
    const limiter: LimiterRound[] = []
    const path = '/api/v1/bench/runs/1'
    for (const url of [local, shared]) await runWrk(`${url}${path}`, { seconds: 1, connections: options.connections })
    for (let round = 1; round <= options.rounds; round++) {
      for (const [broker, streamUrls] of [['memory', [memory]], ['redis', [redisA, redisB]]] as const) {
        const load = Bun.spawn(
          pinned(CLIENT_CORE, ['bun', `${import.meta.dir}/cluster-events.ts`, String(options.streams), String(options.seconds), String(options.publishers), streamUrls[0], ...streamUrls]),
          // Bun's fetch runs at most 256 requests at once by default: 1,000 open streams need more.
          { stdout: 'pipe', stderr: 'inherit', env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(options.streams + options.publishers + 64) } },
        )
        const result = JSON.parse(await new Response(load.stdout).text()) as Omit<EventRound, 'broker' | 'round'>
        events.push({ broker, round, ...result })
        log(
          `  round ${round} events ${broker.padEnd(7)} ${result.streams} streams  ${Math.round(result.eventsPerSecond)} events/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms  received ${result.received}/${result.accepted}`,
        )
      }
      for (const [label, url] of [['local', local], ['redis', shared]] as const) {
        const wrk = await runWrk(`${url}${path}`, { seconds: options.seconds, connections: options.connections })
        limiter.push({ limiter: label, round, ...wrk })
        log(`  round ${round} proxy -c${options.connections} ${label.padEnd(6)} limiter ${Math.round(wrk.requestsPerSecond)} req/s  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms${wrk.errors ? `  ERRORS ${wrk.errors}` : ''}`)
      }
    }
    return { events, limiter }
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}
