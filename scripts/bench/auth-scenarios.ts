/**
 * Proxy throughput with authentication on, as a ratio to authentication off in the same run
 * (README, "Benchmarks"): HS256 and RS256, each with one token sent by every request (a browser
 * session: the verified-token cache answers) and with 10,000 distinct tokens in turn (more
 * than the cache holds, so every request is verified: the cost without the cache). The
 * distinct tokens are sent by a wrk Lua script, which costs the load generator more per
 * request: `off-distinct` sends them to the gateway without authentication, as their baseline.
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { SERVER_CORE, freePort, spawnPinned, stop, waitForHttp } from './processes'
import { type WrkResult, runWrk } from './wrk'

export type AuthScenario = 'off' | 'hs256' | 'rs256' | 'off-distinct' | 'hs256-distinct' | 'rs256-distinct'

export interface AuthRound extends WrkResult {
  scenario: AuthScenario
  round: number
}

export interface AuthOptions {
  binary: string
  rounds: number
  seconds: number
  connections: number
}

/** More distinct tokens than the verified-token cache holds (5,000). */
const DISTINCT_TOKENS = 10_000
const SECRET = 'bench-secret-of-at-least-32-bytes-long!'

export async function runAuthScenarios(options: AuthOptions, log: (line: string) => void): Promise<AuthRound[]> {
  const children: Subprocess[] = []
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-auth-'))
  const { privateKey, publicKey } = await generateKeyPair('RS256')
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' }] }
  // The identity provider: asked once at each gateway's start.
  const idp = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json(jwks) })
  const sign = (alg: 'HS256' | 'RS256', sub: string) =>
    new SignJWT({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader(alg === 'HS256' ? { alg } : { alg, kid: 'bench' })
      .sign(alg === 'HS256' ? new TextEncoder().encode(SECRET) : privateKey)
  try {
    const backendPort = await freePort()
    children.push(spawnPinned(SERVER_CORE, ['bun', `${import.meta.dir}/backend.ts`, String(backendPort)], { NODE_ENV: 'production' }, 'ignore'))
    await waitForHttp(`http://127.0.0.1:${backendPort}/`)
    // As the proxy part runs it (every feature on, the log to a file), plus the authentication settings.
    const start = async (label: string, env: Record<string, string>) => {
      const port = await freePort()
      const settings = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', BENCH_URL: `http://127.0.0.1:${backendPort}`, RATE_LIMIT: '1000000000', ...env }
      children.push(spawnPinned(SERVER_CORE, [options.binary], settings, openSync(join(dir, `${label}.log`), 'a')))
      const url = `http://127.0.0.1:${port}`
      await waitForHttp(`${url}/health`)
      return url
    }
    const off = await start('off', {})
    const hs = await start('hs256', { AUTH_JWT_SECRET: SECRET })
    const rs = await start('rs256', { AUTH_JWKS_URL: `http://127.0.0.1:${idp.port}/jwks.json` })

    const hsToken = await sign('HS256', 'bench-user')
    const rsToken = await sign('RS256', 'bench-user')
    const hsScript = tokenScript(dir, 'hs256', await Promise.all(Array.from({ length: DISTINCT_TOKENS }, (_, i) => sign('HS256', `user-${i}`))))
    const rsScript = tokenScript(dir, 'rs256', await Promise.all(Array.from({ length: DISTINCT_TOKENS }, (_, i) => sign('RS256', `user-${i}`))))
    const path = '/api/v1/bench/runs/1'
    const scenarios: [AuthScenario, string, Parameters<typeof runWrk>[1]][] = [
      ['off', off, { seconds: options.seconds, connections: options.connections }],
      ['hs256', hs, { seconds: options.seconds, connections: options.connections, headers: { authorization: `Bearer ${hsToken}` } }],
      ['rs256', rs, { seconds: options.seconds, connections: options.connections, headers: { authorization: `Bearer ${rsToken}` } }],
      ['off-distinct', off, { seconds: options.seconds, connections: options.connections, script: hsScript }],
      ['hs256-distinct', hs, { seconds: options.seconds, connections: options.connections, script: hsScript }],
      ['rs256-distinct', rs, { seconds: options.seconds, connections: options.connections, script: rsScript }],
    ]
    // Warm-up: JIT, pools, and the JWKS fetch.
    for (const [, url, wrk] of scenarios) await runWrk(`${url}${path}`, { ...wrk, seconds: 1 })
    const rounds: AuthRound[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const [scenario, url, wrk] of scenarios) {
        const result = await runWrk(`${url}${path}`, wrk)
        rounds.push({ scenario, round, ...result })
        log(`  round ${round} ${scenario.padEnd(15)} ${Math.round(result.requestsPerSecond)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `  ERRORS ${result.errors}` : ''}`)
      }
    }
    return rounds
  } finally {
    for (const child of children.reverse()) await stop(child)
    idp.stop(true)
  }
}

/** A wrk script sending `tokens` in turn as `Authorization: Bearer`. */
function tokenScript(dir: string, name: string, tokens: string[]): string {
  const file = join(dir, `${name}-tokens.lua`)
  writeFileSync(
    file,
    `local tokens = {\n${tokens.map((t) => `"${t}"`).join(',\n')}\n}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })\nend\n`,
  )
  return file
}
