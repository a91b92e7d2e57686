/**
 * Event streams at scale: N streams held by the load client (its own process), the gateway's
 * RSS per stream, the delivery time of a broadcast through the HTTP publish API, and three
 * connect/drop cycles to show that nothing is retained.
 */
import type { Subprocess } from 'bun'
import { mkdtempSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { startLoadClient } from './load-client'
import { CLIENT_CORE, SERVER_CORE, freePort, pinned, rssBytes, spawnPinned, stop, waitForHttp } from './processes'

export interface BroadcastResult {
  received: number
  streams: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export interface CycleResult {
  cycle: number
  connectMs: number
  rssBytesConnected: number
  rssBytesPerStream: number
  broadcasts: BroadcastResult[]
  hubEmptyAfterDrop: boolean
  rssBytesAfterDrop: number
}

/** `bare-direct`: the bare baseline on Bun's `type: "direct"` streams (`--direct-streams`). */
export type SseServer = 'bare' | 'bare-direct' | 'gateway'

export interface SseResult {
  server: SseServer
  /** The server, or for another build (`--compare label=binary`) `gateway <label>`. */
  label: string
  streams: number
  rssBytesBaseline: number
  cycles: CycleResult[]
  /** RSS after the last drop relative to after the first (target: within 10% after three cycles). */
  rssGrowthAfterCycles: number
}

const BROADCASTS_PER_CYCLE = 3
const SETTLE_MS = 1_500

/**
 * One server (the gateway, or the bare Bun baseline), one load client, `cycleCount` cycles of
 * `streams` connections.
 */
export async function runSseScenario(
  server: SseServer,
  binary: string,
  streams: number,
  cycleCount: number,
  log: (line: string) => void,
  label: string = server,
): Promise<SseResult> {
  const dir = mkdtempSync(`${tmpdir()}/gateway-sse-bench-`)
  const children: Subprocess[] = []
  try {
    const port = await freePort()
    const gateway = spawnPinned(
      SERVER_CORE,
      server === 'gateway' ? [binary] : ['bun', `${import.meta.dir}/bare-sse.ts`],
      { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', RATE_LIMIT: '1000000000', DIRECT: server === 'bare-direct' ? '1' : '0' },
      openSync(`${dir}/gateway.log`, 'a'),
    )
    children.push(gateway)
    const base = `http://127.0.0.1:${port}`
    await waitForHttp(`${base}/health`)
    const client = startLoadClient(pinned(CLIENT_CORE, ['bun', `${import.meta.dir}/sse-load.ts`]))
    children.push(client.process)
    const { command, reply } = client

    await Bun.sleep(SETTLE_MS)
    const rssBytesBaseline = rssBytes(gateway.pid)
    const cycles: CycleResult[] = []
    for (let cycle = 1; cycle <= cycleCount; cycle++) {
      const connected = await command(`connect ${port} ${streams}`, 'connected')
      await Bun.sleep(SETTLE_MS)
      const rssBytesConnected = rssBytes(gateway.pid)
      const broadcasts: BroadcastResult[] = []
      for (let b = 0; b < BROADCASTS_PER_CYCLE; b++) {
        await command('expect', 'armed')
        const response = await fetch(`${base}/api/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ event_type: 'bench.broadcast', data: { sent_at: performance.timeOrigin + performance.now(), n: b } }),
        })
        if (response.status !== 202) throw new Error(`publish answered ${response.status}: ${await response.text()}`)
        broadcasts.push((await reply('delivered')) as BroadcastResult)
      }
      await command('drop', 'dropped')
      const hubEmptyAfterDrop = await waitForNoStreams(base)
      const rssBytesAfterDrop = await settledRss(gateway.pid)
      const result: CycleResult = {
        cycle,
        connectMs: connected.ms,
        rssBytesConnected,
        rssBytesPerStream: (rssBytesConnected - rssBytesBaseline) / streams,
        broadcasts,
        hubEmptyAfterDrop,
        rssBytesAfterDrop,
      }
      cycles.push(result)
      const worst = broadcasts.reduce((a, b) => (b.p99Ms > a.p99Ms ? b : a))
      log(
        `  ${label.padEnd(11)} ${streams} streams, cycle ${cycle}: ${(result.rssBytesPerStream / 1024).toFixed(2)} KB RSS/stream, broadcast p50 ${worst.p50Ms.toFixed(1)} / p99 ${worst.p99Ms.toFixed(1)} / max ${worst.maxMs.toFixed(1)} ms (${worst.received}/${worst.streams}), hub empty after drop: ${hubEmptyAfterDrop}, RSS after drop ${(result.rssBytesAfterDrop / 1e6).toFixed(1)} MB`,
      )
    }
    client.exit()
    return {
      server,
      label,
      streams,
      rssBytesBaseline,
      cycles,
      rssGrowthAfterCycles: cycles.at(-1)!.rssBytesAfterDrop / cycles[0]!.rssBytesAfterDrop - 1,
    }
  } finally {
    for (const child of children.reverse()) await stop(child)
  }
}

/**
 * RSS once the garbage of the dropped streams has had time to go: the lowest of several
 * samples over a few seconds (collection runs when it runs; a single sample mostly measures
 * its timing).
 */
async function settledRss(pid: number): Promise<number> {
  let lowest = Number.POSITIVE_INFINITY
  for (let i = 0; i < 10; i++) {
    await Bun.sleep(300)
    lowest = Math.min(lowest, rssBytes(pid))
  }
  return lowest
}

/** Polls the gateway's own gauge until it reports no open stream. */
async function waitForNoStreams(base: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const metrics = await (await fetch(`${base}/metrics`)).text()
    // The gateway's gauge (the bare baseline answers the same line).
    if (/^gateway_sse_connections 0$/m.test(metrics)) return true
    await Bun.sleep(100)
  }
  return false
}
