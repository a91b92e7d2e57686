/** `bin/api-gateway demo` as its own process on a free loopback port, with its console's URL. */
import type { Subprocess } from 'bun'
import { closedPort } from './backend'
import { collectLines } from './gateway-process'
import type { LogLine } from './gateway'

const BINARY = new URL('../../bin/api-gateway', import.meta.url).pathname

export interface DemoProcess {
  /** The URL the demo printed, e.g. `http://127.0.0.1:40123/`. */
  consoleUrl: string
  /** The gateway's JSON log lines (stdout). */
  logs: LogLine[]
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  stop(): Promise<void>
}

/** @example const demo = await startDemoProcess(); await fetch(demo.consoleUrl) */
export async function startDemoProcess(env: Record<string, string> = {}): Promise<DemoProcess> {
  const port = await closedPort()
  const child = Bun.spawn([BINARY, 'demo'], { env: { PATH: process.env.PATH!, PORT: String(port), ...env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const logs: LogLine[] = []
  void collectLines(child.stdout, logs)
  const reader = child.stderr.getReader()
  const decoder = new TextDecoder()
  let stderr = ''
  const giveUpAt = Date.now() + 15_000
  let consoleUrl: string | undefined
  while (consoleUrl === undefined) {
    const { done, value } = await reader.read()
    if (done || Date.now() > giveUpAt) throw new Error(`the demo printed no URL; stderr: ${stderr}`)
    stderr += decoder.decode(value)
    consoleUrl = /api-gateway demo: open (\S+)/.exec(stderr)?.[1]
  }
  reader.releaseLock()
  return {
    consoleUrl,
    logs,
    child,
    async stop() {
      child.kill('SIGTERM')
      await child.exited
    },
  }
}
