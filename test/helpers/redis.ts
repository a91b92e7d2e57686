/** A real `redis-server` on 127.0.0.1 and a free port, that a test can stop and start again on the same port. */
import type { Subprocess } from 'bun'
import { mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { closedPort } from './backend'

export interface TestRedis {
  url: string
  port: number
  /** Kills the server (its data goes with it unless `persistent`). */
  stop(): Promise<void>
  /** Starts it again on the same port. */
  start(): Promise<void>
  /** Freezes the server (SIGSTOP): its socket stays open and nothing answers, like a hung Redis. */
  pause(): void
  resume(): void
  /** Runs one command through `redis-cli` (assertions on what is stored). */
  cli(...args: string[]): Promise<string>
}

/**
 * @param persistent keep the data across `stop()`/`start()` (AOF in a temporary directory), as
 * the README's deployment advice does.
 * @example const redis = await startRedis(); ... await redis.stop()
 */
export async function startRedis({ persistent = false } = {}): Promise<TestRedis> {
  const port = await closedPort()
  const dir = persistent ? `${tmpdir()}/gw-redis-${port}-${Date.now()}` : undefined
  if (dir !== undefined) mkdirSync(dir, { recursive: true })
  let server: Subprocess<'ignore', 'pipe', 'pipe'> | undefined

  const start = async () => {
    const args = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '']
    args.push(...(dir !== undefined ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] : ['--appendonly', 'no']))
    const child = Bun.spawn(args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
    server = child
    const reader = child.stdout.getReader()
    let seen = ''
    const decoder = new TextDecoder()
    while (!seen.includes('Ready to accept connections')) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`redis-server exited before it was ready:\n${seen}`)
      seen += decoder.decode(value)
    }
    reader.releaseLock()
    void child.stdout.pipeTo(new WritableStream())
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (server === undefined) return
      server.kill('SIGKILL')
      await server.exited
      server = undefined
    },
    start,
    pause: () => server?.kill('SIGSTOP'),
    resume: () => server?.kill('SIGCONT'),
    async cli(...args: string[]) {
      const run = Bun.spawn(['redis-cli', '-p', String(port), ...args], { stdout: 'pipe' })
      return (await new Response(run.stdout).text()).trim()
    },
  }
}
