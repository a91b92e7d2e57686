/**
 * Instances and WebSockets (README, "Benchmarks"), in one run of interleaved rounds:
 * - proxy throughput (wrk `-c64`) through a service with two instances against the same
 *   service with one (the same two backend processes, the one-instance gateway using the first);
 * - WebSocket echo messages per second and round-trip p99 through the gateway, against the
 *   same load straight to the backend and through a bare Bun relay (`bare-ws-relay.ts`).
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLIENT_CORE, SERVER_CORE, freePort, pinned, spawnPinned, stop, waitForHttp } from './processes'
import { type WrkResult, runWrk } from './wrk'

export interface InstancesRound extends WrkResult {
  scenario: '1 instance' | '2 instances'
  round: number
}

export interface WebSocketRound {
  scenario: 'direct' | 'bare-relay' | 'gateway'
  round: number
  messagesPerSecond: number
  messages: number
  p50Ms: number
  p99Ms: number
  errors: number
}

export interface UpstreamOptions {
  binary: string
  rounds: number
  seconds: number
  connections: number
}

export async function runUpstreamScenarios(options: UpstreamOptions, log: (line: string) => void): Promise<{ instances: InstancesRound[]; websocket: WebSocketRound[] }> {
  const children: Subprocess[] = []
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-upstream-'))
  try {
    const backends: string[] = []
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      children.push(spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(port)], { NODE_ENV: 'production' }, 'ignore'))
      backends.push(`http://127.0.0.1:${port}`)
      await waitForHttp(`${backends[i]}/`)
    }
    const start = async (label: string, benchUrl: string) => {
      const port = await freePort()
      const settings = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', BENCH_URL: benchUrl, RATE_LIMIT: '1000000000' }
      children.push(spawnPinned(SERVER_CORE, [options.binary], settings, openSync(join(dir, `${label}.log`), 'a')))
      const url = `http://127.0.0.1:${port}`
      await waitForHttp(`${url}/health`)
      return url
    }
    const relayPort = await freePort()
    children.push(spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/bare-ws-relay.ts`, new URL(backends[0]!).port, String(relayPort)], { NODE_ENV: 'production' }, 'ignore'))
    await waitForHttp(`http://127.0.0.1:${relayPort}/`)
    const one = await start('one', backends[0]!)
    const two = await start('two', backends.join(','))
    const path = '/api/v1/bench/runs/1'
    const wrkPlan = { seconds: options.seconds, connections: options.connections }
    for (const url of [one, two]) await runWrk(`${url}${path}`, { ...wrkPlan, seconds: 1 })

    const instances: InstancesRound[] = []
    const websocket: WebSocketRound[] = []
    const wsTargets = [
      ['direct', `${backends[0]!.replace('http', 'ws')}/echo`],
      ['bare-relay', `ws://127.0.0.1:${relayPort}/echo`],
      ['gateway', `${one.replace('http', 'ws')}/api/v1/bench/echo`],
    ] as const
    for (let round = 1; round <= options.rounds; round++) {
      for (const [scenario, url] of [['1 instance', one], ['2 instances', two]] as const) {
        const result = await runWrk(`${url}${path}`, wrkPlan)
        instances.push({ scenario, round, ...result })
        log(`  round ${round} proxy ${scenario.padEnd(11)} ${Math.round(result.requestsPerSecond)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `  ERRORS ${result.errors}` : ''}`)
      }
      for (const [scenario, url] of wsTargets) {
        const load = Bun.spawn(pinned(CLIENT_CORE, ['bun', `${import.meta.dir}/ws-load.ts`, url, String(options.connections), String(options.seconds), '64']), { stdout: 'pipe', stderr: 'inherit' })
        const result = JSON.parse(await new Response(load.stdout).text()) as Omit<WebSocketRound, 'scenario' | 'round'>
        websocket.push({ scenario, round, ...result })
        log(`  round ${round} websocket ${scenario.padEnd(7)} ${Math.round(result.messagesPerSecond)} msg/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `  ERRORS ${result.errors}` : ''}`)
      }
    }
    return { instances, websocket }
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}
