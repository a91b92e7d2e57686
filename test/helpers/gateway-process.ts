/**
 * A gateway as its own process (`bun src/main.ts`) on 127.0.0.1 and a free port: what cluster
 * tests need to run several gateways against one Redis, kill one, and start it again.
 */
import type { Subprocess } from 'bun'
import { closedPort } from './backend'
import type { LogLine } from './gateway'

const ROOT = new URL('../..', import.meta.url).pathname
const MAIN = `${ROOT}src/main.ts`
const BINARY = `${ROOT}bin/api-gateway`

/** Builds `bin/api-gateway` unless it is newer than every source file. */
export function buildBinary(): void {
  const build = Bun.spawnSync(['bun', `${ROOT}scripts/build.ts`, '--if-stale'], { cwd: ROOT, stderr: 'pipe' })
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr}`)
}

export interface GatewayProcess {
  url: string
  port: number
  /** Every JSON line logged so far, across restarts. */
  logs: LogLine[]
  /** The running process's id (its RSS is read from /proc). */
  readonly pid: number
  /** Kills the process at once (a crash), or with SIGTERM (a deploy). */
  kill(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>
  /** Starts it again on the same port, with the same settings. */
  restart(): Promise<void>
}

/**
 * @param waitForRedis resolve only once `/health` says Redis is up (the default when `REDIS_URL` is set).
 * @param binary run the compiled `bin/api-gateway` (call `buildBinary` first) instead of the sources.
 * @example const a = await startGatewayProcess({ REDIS_URL: redis.url, HITL_URL: hitl.url })
 */
export async function startGatewayProcess(env: Record<string, string>, { waitForRedis = env.REDIS_URL !== undefined, binary = false } = {}): Promise<GatewayProcess> {
  const port = await closedPort()
  const url = `http://127.0.0.1:${port}`
  const logs: LogLine[] = []
  let child: Subprocess<'ignore', 'pipe', 'inherit'> | undefined

  const start = async () => {
    child = Bun.spawn(binary ? [BINARY] : ['bun', MAIN], {
      env: { PATH: process.env.PATH!, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    void collectLines(child.stdout, logs)
    const giveUpAt = Date.now() + 10_000
    for (;;) {
      const health = await fetch(`${url}/health`).then((r) => r.json() as Promise<{ redis?: string }>).catch(() => undefined)
      if (health !== undefined && (!waitForRedis || health.redis === 'up')) return
      if (Date.now() > giveUpAt) throw new Error(`gateway on ${url} did not become healthy; health: ${JSON.stringify(health)}`)
      await Bun.sleep(25)
    }
  }

  await start()
  return {
    url,
    port,
    logs,
    get pid() {
      return child!.pid
    },
    async kill(signal = 'SIGKILL') {
      if (child === undefined) return
      child.kill(signal)
      await child.exited
      child = undefined
    },
    restart: start,
  }
}

/** Parses every JSON line of a gateway's stdout into `logs`, as they come (other lines are skipped). */
export async function collectLines(stdout: ReadableStream<Uint8Array>, logs: LogLine[]): Promise<void> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of stdout) {
    buffer += decoder.decode(chunk, { stream: true })
    let end: number
    while ((end = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, end)
      buffer = buffer.slice(end + 1)
      try {
        logs.push(JSON.parse(line) as LogLine)
      } catch {
        // Not a log line.
      }
    }
  }
}
