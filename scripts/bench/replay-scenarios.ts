/**
 * Replay amplification (README, "Benchmarks"): one client's history of large events, asked for
 * in full (`Last-Event-ID: 0`) by many streams that never read, as an attacker would. Measured
 * as the gateway's RSS growth per stream opened, for the memory and the Redis broker, and for
 * every build given with `--compare label=binary` beside this one, in interleaved rounds.
 */
import type { Subprocess } from 'bun'
import net from 'node:net'
import { SERVER_CORE, freePort, rssBytes, spawnPinned, stop, waitForHttp, waitForRedis } from './processes'

export interface ReplayRound {
  build: string
  broker: 'memory' | 'redis'
  round: number
  /** Idle streams asked for. */
  streams: number
  /** Streams the gateway held open (the rest refused, 429 too_many_streams). */
  held: number
  rssGrowthBytes: number
  /** The Redis link declared an outage under the load (its streams then closed). */
  redisOutages: number
}

export interface ReplayOptions {
  /** Label → gateway binary; `current` is the build under test. */
  builds: Record<string, string>
  rounds: number
  streamCounts: number[]
  events: number
  eventBytes: number
}

const CLIENT = 'replayed'

export async function runReplayScenarios(options: ReplayOptions, log: (line: string) => void): Promise<ReplayRound[]> {
  const results: ReplayRound[] = []
  const redisPort = await freePort()
  const redis = spawnPinned(SERVER_CORE, ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, 'ignore')
  try {
    await Bun.sleep(300)
    for (let round = 1; round <= options.rounds; round++) {
      for (const streams of options.streamCounts) {
        for (const broker of ['memory', 'redis'] as const) {
          for (const [build, binary] of Object.entries(options.builds)) {
            const env: Record<string, string> = broker === 'redis' ? { REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: `bench-replay-${build}-${round}-${streams}:` } : {}
            const result = await oneRound(binary, env, streams, options)
            results.push({ build, broker, round, streams, ...result })
            log(
              `  round ${round} ${build} ${broker} ${streams} streams: ${result.held} held, RSS +${(result.rssGrowthBytes / 1e6).toFixed(1)} MB (${(result.rssGrowthBytes / streams / 1024).toFixed(0)} KB per stream asked)${result.redisOutages ? `, ${result.redisOutages} Redis outage(s)` : ''}`,
            )
          }
        }
      }
    }
  } finally {
    await stop(redis)
  }
  return results
}

async function oneRound(binary: string, env: Record<string, string>, streams: number, options: ReplayOptions) {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const gateway: Subprocess = spawnPinned(SERVER_CORE, [binary], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT: '0', ...env }, 'pipe')
  const output = new Response(gateway.stdout as ReadableStream).text()
  const sockets: net.Socket[] = []
  let measured: { held: number; rssGrowthBytes: number }
  try {
    await waitForHttp(`${url}/health`)
    if (env.REDIS_URL) await waitForRedis(url)
    const event = JSON.stringify({ event_type: 'report', data: { body: 'x'.repeat(options.eventBytes) } })
    for (let i = 0; i < options.events; i++) {
      const response = await fetch(`${url}/api/v1/events/${CLIENT}`, { method: 'POST', body: event })
      if (response.status !== 202) throw new Error(`publish answered ${response.status}`)
    }
    await Bun.sleep(500)
    const before = rssBytes(gateway.pid)
    for (let i = 0; i < streams; i++) {
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`GET /api/v1/events/${CLIENT} HTTP/1.1\r\nHost: bench\r\nLast-Event-ID: 0\r\n\r\n`)
      // Never read: every byte the gateway queues stays in its memory or the kernel's.
      socket.pause()
      sockets.push(socket)
    }
    let held = 0
    for (let i = 0; i < 40; i++) {
      await Bun.sleep(100)
      held = await openStreams(url)
      if (held >= streams) break
    }
    await Bun.sleep(1_000)
    measured = { held: await openStreams(url), rssGrowthBytes: rssBytes(gateway.pid) - before }
  } finally {
    for (const socket of sockets) socket.destroy()
    await stop(gateway)
  }
  const redisOutages = (await output).split('\n').filter((line) => line.includes('Redis unreachable')).length
  return { ...measured, redisOutages }
}

async function openStreams(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/^gateway_sse_connections (\d+)/m.exec(text)?.[1] ?? 0)
}
