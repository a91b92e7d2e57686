/** Starting pinned processes and reading their CPU time and memory from /proc. */
import type { Subprocess } from 'bun'
import net from 'node:net'
import { readFileSync } from 'node:fs'

export const CORES = navigator.hardwareConcurrency

/** `--client-cores 0-1` / `--server-cores 2-7` (taskset lists), or `--no-pin`: the core split of a run. */
function option(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at === -1 ? undefined : process.argv[at + 1]
}
/** No pinning at all: the kernel places the load generator and the servers (`--no-pin`). */
export const UNPINNED = process.argv.includes('--no-pin') || CORES < 2
/**
 * By default, with two or more cores, the load generator on core 0 and the servers under test on
 * core 1. On a bigger machine give the servers several: `--client-cores 0-3 --server-cores 4-15`.
 */
export const CLIENT_CORE = option('--client-cores') ?? '0'
export const SERVER_CORE = option('--server-cores') ?? (CORES >= 2 ? '1' : '0')
const CLOCK_TICKS_PER_SECOND = 100

/** `taskset -c <cores> command…` when pinning, else the command itself. */
export function pinned(cores: string, command: string[]): string[] {
  return UNPINNED ? command : ['taskset', '-c', cores, ...command]
}

export function spawnPinned(cores: string, command: string[], env: Record<string, string> = {}, stdout: 'pipe' | 'ignore' | number = 'pipe'): Subprocess {
  return Bun.spawn(pinned(cores, command), { env: { ...process.env, ...env }, stdout, stderr: 'inherit', stdin: 'ignore' })
}

/** User plus system CPU seconds of a process, all threads. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  return kb ? Number(kb[1]) * 1024 : 0
}

/** A port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once `url` answers, or throws after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await fetch(url)
      return
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`)
      await Bun.sleep(50)
    }
  }
}

/** Resolves once the gateway at `url` reports Redis up on /health. */
export async function waitForRedis(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const health = (await (await fetch(`${url}/health`)).json()) as { redis?: string }
    if (health.redis === 'up') return
    await Bun.sleep(25)
  }
  throw new Error(`${url} never reached Redis`)
}

export async function stop(child: Subprocess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return
  child.kill('SIGTERM')
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(12_000).then(() => false)])
  if (!exited) child.kill('SIGKILL')
}
