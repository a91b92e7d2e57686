/** Running wrk and reading its report. */
import { CLIENT_CORE, pinned } from './processes'

export interface WrkResult {
  requestsPerSecond: number
  requests: number
  p50Ms: number
  p99Ms: number
  /** Non-2xx/3xx responses and socket errors: a scenario with any is not comparable. */
  errors: number
}

export interface WrkOptions {
  seconds: number
  connections: number
  /** Extra request headers (`-H`). */
  headers?: Record<string, string>
  /** A wrk Lua script (`-s`), e.g. one that varies a header per request. */
  script?: string
  /** wrk threads (default 1). */
  threads?: number
  /** Run wrk where the kernel puts it, not on the load generator's cores. */
  unpinned?: boolean
}

/**
 * @example await runWrk('http://127.0.0.1:8081/api/v1/bench/x', { seconds: 10, connections: 64 })
 */
export async function runWrk(url: string, options: WrkOptions): Promise<WrkResult> {
  const extra = [...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]), ...(options.script ? ['-s', options.script] : [])]
  const wrk = ['wrk', `-t${options.threads ?? 1}`, `-c${options.connections}`, `-d${options.seconds}s`, '--latency', ...extra, url]
  const command = options.unpinned ? wrk : pinned(CLIENT_CORE, wrk)
  const child = Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe' })
  const output = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error(`wrk failed: ${await new Response(child.stderr).text()}`)
  return parseWrk(output)
}

export function parseWrk(output: string): WrkResult {
  const number = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? Number.NaN)
  const latencyMs = (percentile: string) => {
    const match = new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(output)
    if (!match) return Number.NaN
    const value = Number(match[1])
    return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
  }
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  const non2xx = number(/Non-2xx or 3xx responses: (\d+)/)
  const errors = (Number.isNaN(non2xx) ? 0 : non2xx) + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0)
  return {
    requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/),
    requests: number(/(\d+) requests in/),
    p50Ms: latencyMs('50'),
    p99Ms: latencyMs('99'),
    errors,
  }
}
