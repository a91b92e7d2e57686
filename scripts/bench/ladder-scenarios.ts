/**
 * Runs every rung of the feature ladder (`feature-ladder.ts`) and the gateway against one
 * backend, in interleaved rounds, so that the gateway's cost can be read against the floor that
 * its required features put under any implementation.
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { RUNGS } from './feature-ladder'
import { SERVER_CORE, cpuSeconds, freePort, spawnPinned, stop, waitForHttp } from './processes'
import { runWrk } from './wrk'

export interface LadderResult {
  label: string
  requestsPerSecond: number
  p99Ms: number
  cpuUsPerRequest: number
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export async function runLadder(options: { rounds: number; seconds: number; connections: number; binary: string }, log: (line: string) => void): Promise<LadderResult[]> {
  const dir = mkdtempSync(`${tmpdir()}/gateway-ladder-`)
  const children: Subprocess[] = []
  try {
    const backendPort = await freePort()
    const backend = spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' })
    children.push(backend)
    await waitForHttp(`http://127.0.0.1:${backendPort}/`)
    const targets: { label: string; url: string; pid: number }[] = []
    for (let rung = 0; rung < RUNGS.length; rung++) {
      const port = await freePort()
      const server = spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/feature-ladder.ts`, String(rung), String(backendPort), String(port)], { NODE_ENV: 'production' })
      children.push(server)
      await waitForHttp(`http://127.0.0.1:${port}/`)
      targets.push({ label: `${rung}: ${RUNGS[rung]}`, url: `http://127.0.0.1:${port}/api/v1/bench/runs/1`, pid: server.pid })
    }
    const gatewayPort = await freePort()
    const gatewayEnv = { PORT: String(gatewayPort), HOST: '127.0.0.1', BENCH_URL: `http://127.0.0.1:${backendPort}`, LOG_LEVEL: 'info', RATE_LIMIT: '1000000000' }
    const gateway = spawnPinned(SERVER_CORE, [options.binary], gatewayEnv, openSync(`${dir}/gateway.log`, 'a'))
    children.push(gateway)
    await waitForHttp(`http://127.0.0.1:${gatewayPort}/health`)
    targets.push({ label: 'the gateway, every feature on', url: `http://127.0.0.1:${gatewayPort}/api/v1/bench/runs/1`, pid: gateway.pid })

    for (const target of targets) await runWrk(target.url, { seconds: 1, connections: options.connections })
    const samples = new Map<string, { rps: number[]; p99: number[]; cpu: number[] }>(targets.map((t) => [t.label, { rps: [], p99: [], cpu: [] }]))
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of targets) {
        const before = cpuSeconds(target.pid)
        const wrk = await runWrk(target.url, { seconds: options.seconds, connections: options.connections })
        const cpu = ((cpuSeconds(target.pid) - before) / wrk.requests) * 1e6
        const s = samples.get(target.label)!
        s.rps.push(wrk.requestsPerSecond)
        s.p99.push(wrk.p99Ms)
        s.cpu.push(cpu)
        log(`  round ${round} ${target.label.slice(0, 60).padEnd(60)} ${Math.round(wrk.requestsPerSecond).toString().padStart(7)} req/s  ${cpu.toFixed(1)} µs CPU/req`)
      }
    }
    return targets.map((t) => {
      const s = samples.get(t.label)!
      return { label: t.label, requestsPerSecond: median(s.rps), p99Ms: median(s.p99), cpuUsPerRequest: median(s.cpu) }
    })
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}
