/**
 * What policies cost the proxy, in one run (README, "Benchmarks"): wrk through a gateway with
 * a policy file of 50 services and 200 routes, the request on one of the longest routes,
 * against a gateway without a file and against a service of the same process that the file
 * does not name (no routes, the environment's policy: the no-file path, without the noise
 * between two processes, which measured up to 12% here); a route with header rules and
 * `require` against a service without them in the same process, with the same token; and the
 * request latency during a storm of reloads (a SIGHUP every 100 ms) against none. Interleaved
 * rounds, so machine noise hits every scenario alike.
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { SERVER_CORE, cpuSeconds, freePort, spawnPinned, stop, waitForHttp } from './processes'
import { type WrkResult, runWrk } from './wrk'

export type PolicyScenario =
  | 'no file'
  | 'file, a service it does not name'
  | '50 services, 200 routes'
  | 'auth, no rules'
  | 'route rules + require'
  | 'no reloads'
  | 'reload storm'

export interface PolicyRound extends WrkResult {
  scenario: PolicyScenario
  round: number
  /** The gateway process's CPU time per request: steadier than throughput on a shared machine. */
  cpuUsPerRequest: number
  /** Reload storm: SIGHUPs sent during the round. */
  reloads?: number
}

export interface PolicyOptions {
  binary: string
  rounds: number
  seconds: number
  connections: number
}

const SECRET = 'bench-secret-of-at-least-32-bytes-long!'
const SERVICES = 50
const ROUTES_PER_SERVICE = 4

/** 50 services of 4 routes each, all on the bench backend; `svc25` is the one requested. */
function largeFile(backend: string): string {
  const lines = ['services:']
  for (let s = 0; s < SERVICES; s++) {
    lines.push(`  svc${s}:`, `    url: ${backend}`, '    timeout_ms: 10000', '    routes:')
    for (let r = 0; r < ROUTES_PER_SERVICE; r++) {
      lines.push(`      - path: /area${r}/section/${r}`, '        methods: [GET, POST]', `        rate_limit: { rate: 100000000, burst: 100000000 }`)
    }
  }
  return `${lines.join('\n')}\n`
}

/** One service whose route sets request and response headers and requires a claim. */
function rulesFile(backend: string): string {
  return `services:
  bench:
    url: ${backend}
    routes:
      - path: /runs
        require: { roles: bench }
        request_headers: { set: { X-Api-Version: "2", X-Tenant: bench }, remove: [X-Debug] }
        response_headers: { set: { Cache-Control: no-store }, remove: [Server] }
`
}

export async function runPolicyScenarios(options: PolicyOptions, log: (line: string) => void): Promise<PolicyRound[]> {
  const children: Subprocess[] = []
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-policy-'))
  try {
    const backendPort = await freePort()
    const backend = `http://127.0.0.1:${backendPort}`
    children.push(spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' }, 'ignore'))
    await waitForHttp(`${backend}/`)
    const large = join(dir, 'large.yaml')
    writeFileSync(large, largeFile(backend))
    const rules = join(dir, 'rules.yaml')
    writeFileSync(rules, rulesFile(backend))
    // As the proxy part runs it: every feature on, the log to a file.
    const start = async (label: string, env: Record<string, string>) => {
      const port = await freePort()
      const settings = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', BENCH_URL: backend, RATE_LIMIT: '1000000000', ...env }
      const child = spawnPinned(SERVER_CORE, [options.binary], settings, openSync(join(dir, `${label}.log`), 'a'))
      children.push(child)
      const url = `http://127.0.0.1:${port}`
      await waitForHttp(`${url}/health`)
      return { url, child }
    }
    const token = await new SignJWT({ sub: 'bench-user', roles: ['bench'], exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(SECRET))
    const bearer = { authorization: `Bearer ${token}`, 'x-debug': '1' }
    const plain = await start('no-file', {})
    const withFile = await start('large-file', { GATEWAY_CONFIG: large })
    // PLAIN_URL: a service the rules file does not name, so it has no rules: the same process, the same token.
    const withRules = await start('rules', { AUTH_JWT_SECRET: SECRET, GATEWAY_CONFIG: rules, PLAIN_URL: backend })
    const wrk = { seconds: options.seconds, connections: options.connections }
    const scenarios: [PolicyScenario, { url: string; child: Subprocess }, string, Parameters<typeof runWrk>[1]][] = [
      ['no file', plain, '/api/v1/bench/area3/section/3/x', wrk],
      ['file, a service it does not name', withFile, '/api/v1/bench/area3/section/3/x', wrk],
      ['50 services, 200 routes', withFile, '/api/v1/svc25/area3/section/3/x', wrk],
      ['auth, no rules', withRules, '/api/v1/plain/runs/1', { ...wrk, headers: bearer }],
      ['route rules + require', withRules, '/api/v1/bench/runs/1', { ...wrk, headers: bearer }],
    ]
    /** One wrk run, with the gateway's CPU time over it. */
    const measure = async (gateway: { url: string; child: Subprocess }, path: string, options: Parameters<typeof runWrk>[1]) => {
      const cpuBefore = cpuSeconds(gateway.child.pid)
      const result = await runWrk(`${gateway.url}${path}`, options)
      return { ...result, cpuUsPerRequest: ((cpuSeconds(gateway.child.pid) - cpuBefore) * 1e6) / result.requests }
    }
    for (const [, gateway, path, options] of scenarios) await runWrk(`${gateway.url}${path}`, { ...options, seconds: 1 })
    const rounds: PolicyRound[] = []
    const report = (row: PolicyRound) => {
      rounds.push(row)
      log(
        `  round ${row.round} ${row.scenario.padEnd(24)} ${Math.round(row.requestsPerSecond)} req/s  p50 ${row.p50Ms.toFixed(2)} ms  p99 ${row.p99Ms.toFixed(2)} ms  ${row.cpuUsPerRequest.toFixed(1)} µs CPU/req${row.reloads ? `  ${row.reloads} reloads` : ''}${row.errors ? `  ERRORS ${row.errors}` : ''}`,
      )
    }
    for (let round = 1; round <= options.rounds; round++) {
      for (const [scenario, gateway, path, options] of scenarios) report({ scenario, round, ...(await measure(gateway, path, options)) })
      // The same gateway and file, with and without a SIGHUP every 100 ms.
      const path = '/api/v1/svc25/area3/section/3/x'
      report({ scenario: 'no reloads', round, ...(await measure(withFile, path, wrk)) })
      let reloads = 0
      const storm = setInterval(() => {
        reloads++
        // Every reload really changes something: the timeout of every service, back and forth.
        writeFileSync(large, reloads % 2 === 0 ? largeFile(backend) : largeFile(backend).replace('timeout_ms: 10000', 'timeout_ms: 9000'))
        withFile.child.kill('SIGHUP')
      }, 100)
      const stormed = await measure(withFile, path, wrk)
      clearInterval(storm)
      report({ scenario: 'reload storm', round, reloads, ...stormed })
    }
    return rounds
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}
