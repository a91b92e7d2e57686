/**
 * `WORKERS=2` against `WORKERS=1` (README, "Benchmarks"), both cluster members of one
 * `redis-server`, rate limiting off so that only the workers differ. Nothing is pinned here,
 * the load generator included: on a 2-core machine wrk needs a core of its own, so this shows
 * what the kernel makes of the split, not how far the gateway scales. On a bigger machine, use
 * `--only workers --workers N` and give wrk its own cores with `taskset` by hand, or read the
 * proxy part with `--client-cores`/`--server-cores`.
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, stop, waitForHttp } from './processes'
import { type WrkResult, runWrk } from './wrk'

export interface WorkersRound extends WrkResult {
  workers: number
  round: number
}

export interface WorkersOptions {
  binary: string
  rounds: number
  seconds: number
  connections: number
  /** The count to compare with 1. */
  workers: number
}

export async function runWorkersScenarios(options: WorkersOptions, log: (line: string) => void): Promise<WorkersRound[]> {
  const children: Subprocess[] = []
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-workers-'))
  const spawn = (command: string[], env: Record<string, string>, stdout: number | 'ignore' = 'ignore') => {
    const child = Bun.spawn(command, { env: { ...process.env, ...env }, stdout, stderr: 'inherit', stdin: 'ignore' })
    children.push(child)
    return child
  }
  try {
    const redisPort = await freePort()
    spawn(['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {})
    const backendPort = await freePort()
    spawn(['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' })
    await waitForHttp(`http://127.0.0.1:${backendPort}/`)
    const gateways: [number, string][] = []
    for (const workers of [1, options.workers]) {
      const port = await freePort()
      const settings = {
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        BENCH_URL: `http://127.0.0.1:${backendPort}`,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        REDIS_KEY_PREFIX: `bench-workers-${workers}:`,
        RATE_LIMIT: '0',
        WORKERS: String(workers),
      }
      spawn([options.binary], settings, openSync(join(dir, `workers-${workers}.log`), 'a'))
      const url = `http://127.0.0.1:${port}`
      await waitForHttp(`${url}/health`)
      // Every worker up: fresh connections until each has answered.
      const seen = new Set<number | undefined>()
      for (let i = 0; i < 500 && seen.size < workers; i++) {
        seen.add(((await (await fetch(`${url}/health`, { headers: { connection: 'close' } })).json()) as { worker?: number }).worker)
      }
      gateways.push([workers, url])
    }
    const path = '/api/v1/bench/runs/1'
    const plan = { seconds: options.seconds, connections: options.connections, threads: 2, unpinned: true }
    for (const [, url] of gateways) await runWrk(`${url}${path}`, { ...plan, seconds: 1 })
    const rounds: WorkersRound[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const [workers, url] of gateways) {
        const result = await runWrk(`${url}${path}`, plan)
        rounds.push({ workers, round, ...result })
        log(`  round ${round} WORKERS=${workers}  ${Math.round(result.requestsPerSecond)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `  ERRORS ${result.errors}` : ''}`)
      }
    }
    return rounds
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}
