/**
 * Proxy throughput: direct-to-backend, nginx, a bare Bun `fetch` proxy and the gateway against
 * one backend (`bun-fetch` is what any Bun gateway starts from), at each connection count, in
 * interleaved rounds so that machine noise hits all
 * of them alike. `--compare label=path/to/binary` adds another gateway build (an A/B of a change).
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { nginxConfig } from './nginx'
import { SERVER_CORE, cpuSeconds, freePort, spawnPinned, stop, waitForHttp } from './processes'
import { type WrkResult, runWrk } from './wrk'

export interface RoundResult extends WrkResult {
  scenario: string
  connections: number
  round: number
  /** CPU of the proxy under test per request (the backend's for direct). */
  proxyCpuUsPerRequest: number
  /** CPU of backend plus proxy per request. */
  totalCpuUsPerRequest: number
}

export interface ProxyOptions {
  rounds: number
  seconds: number
  /** wrk's `-c` values; every scenario runs at each. */
  connections: number[]
  binary: string
  /** Other gateway builds, by label. */
  compare: Record<string, string>
  workDir: string
}

interface Target {
  url: string
  proxyPid: number
}

/** The settings every gateway build runs with: every feature on, as users run it. */
function gatewayEnv(port: number, backendPort: number): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    BENCH_URL: `http://127.0.0.1:${backendPort}`,
    LOG_LEVEL: 'info',
    // On, with a limit no benchmark reaches: every request still takes a token.
    RATE_LIMIT: '1000000000',
  }
}

/** Runs every round and returns each measurement. */
export async function runProxyScenarios(options: ProxyOptions, log: (line: string) => void): Promise<RoundResult[]> {
  const dir = mkdtempSync(`${tmpdir()}/gateway-bench-`)
  const children: Subprocess[] = []
  try {
    const backendPort = await freePort()
    const backend = spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' })
    children.push(backend)
    await waitForHttp(`http://127.0.0.1:${backendPort}/`)
    const path = '/api/v1/bench/runs/1'
    const targets: Record<string, Target> = { direct: { url: `http://127.0.0.1:${backendPort}${path}`, proxyPid: backend.pid } }

    const nginxPort = await freePort()
    const nginx = spawnPinned(SERVER_CORE, ['nginx', '-c', nginxConfig(dir, nginxPort, backendPort), '-e', `${dir}/error.log`])
    children.push(nginx)
    await waitForHttp(`http://127.0.0.1:${nginxPort}/`)
    targets.nginx = { url: `http://127.0.0.1:${nginxPort}${path}`, proxyPid: await workerPid(nginx.pid) }

    const barePort = await freePort()
    const bare = spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/bare-proxy.ts`, String(backendPort), String(barePort)], { NODE_ENV: 'production' })
    children.push(bare)
    await waitForHttp(`http://127.0.0.1:${barePort}/`)
    targets['bun-fetch'] = { url: `http://127.0.0.1:${barePort}${path}`, proxyPid: bare.pid }

    for (const [label, binary] of [['gateway', options.binary], ...Object.entries(options.compare)] as [string, string][]) {
      const port = await freePort()
      // Its JSON log lines go to a file, as nginx's access log does.
      const gateway = spawnPinned(SERVER_CORE, [binary], gatewayEnv(port, backendPort), openSync(`${dir}/${label}.log`, 'a'))
      children.push(gateway)
      await waitForHttp(`http://127.0.0.1:${port}/health`)
      targets[label] = { url: `http://127.0.0.1:${port}${path}`, proxyPid: gateway.pid }
    }

    const scenarios = Object.keys(targets)
    // Warm every path (JIT, pools) before measuring.
    for (const scenario of scenarios) {
      for (const connections of options.connections) await runWrk(targets[scenario]!.url, { seconds: options.seconds >= 10 ? 2 : 1, connections })
    }

    const results: RoundResult[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const connections of options.connections) {
        for (const scenario of scenarios) {
          const target = targets[scenario]!
          const proxyBefore = cpuSeconds(target.proxyPid)
          const backendBefore = cpuSeconds(backend.pid)
          const wrk = await runWrk(target.url, { seconds: options.seconds, connections })
          const proxyCpu = cpuSeconds(target.proxyPid) - proxyBefore
          const backendCpu = cpuSeconds(backend.pid) - backendBefore
          const result: RoundResult = {
            scenario,
            connections,
            round,
            ...wrk,
            proxyCpuUsPerRequest: (proxyCpu / wrk.requests) * 1e6,
            totalCpuUsPerRequest: ((scenario === 'direct' ? proxyCpu : proxyCpu + backendCpu) / wrk.requests) * 1e6,
          }
          results.push(result)
          log(
            `  round ${round} -c${String(connections).padEnd(4)}${scenario.padEnd(12)} ${Math.round(wrk.requestsPerSecond).toString().padStart(7)} req/s  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms  ${result.proxyCpuUsPerRequest.toFixed(1)} µs CPU/req${wrk.errors ? `  ERRORS ${wrk.errors}` : ''}`,
          )
        }
      }
    }
    return results
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}

/** nginx's single worker: the process that does the proxying. */
async function workerPid(masterPid: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const children = (await Bun.$`pgrep -P ${masterPid}`.nothrow().text()).trim().split('\n').filter(Boolean)
    if (children.length > 0) return Number(children[0])
    await Bun.sleep(50)
  }
  throw new Error('nginx worker did not start')
}
