/**
 * Retention, measured precisely: an in-process gateway (from source) takes `cycles` rounds of N
 * streams from the load client (its own process), three broadcasts each, then a drop. After each
 * drop the heap is collected (`Bun.gc(true)`) and its live size read, so garbage that a separate
 * process has not collected yet cannot pass for retention. Prints one JSON line.
 *
 *   bun scripts/bench/retention.ts <streams> <cycles>
 */
import { heapStats } from 'bun:jsc'
import { createGateway } from '../../src/app'
import { loadConfig } from '../../src/config/settings'
import { BatchedLineWriter, createLogger } from '../../src/ops/log'
import { startLoadClient } from './load-client'

const streams = Number(process.argv[2] ?? 5_000)
const cycles = Number(process.argv[3] ?? 3)
const config = loadConfig({ HOST: '127.0.0.1', RATE_LIMIT: '1000000000', LOG_LEVEL: 'info' })
// Log lines are made as in production, then dropped: this measures memory, not the disk.
const gateway = createGateway({ config, logger: createLogger('info', new BatchedLineWriter(() => {})) })
const server = gateway.listen(0)

/** Streams open in the gateway, as its `gateway_sse_connections` gauge says. */
const openStreams = async () => (await gateway.metrics.sseConnections.get()).values[0]?.value ?? 0

const client = startLoadClient(['bun', `${import.meta.dir}/sse-load.ts`])
async function liveHeapBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    Bun.gc(true)
    await Bun.sleep(100)
  }
  return heapStats().heapSize
}

const before = await liveHeapBytes()
const afterDrops: number[] = []
for (let cycle = 1; cycle <= cycles; cycle++) {
  await client.command(`connect ${server.port} ${streams}`, 'connected')
  for (let b = 0; b < 3; b++) {
    await client.command('expect', 'armed')
    await fetch(`http://127.0.0.1:${server.port}/api/v1/events`, {
      method: 'POST',
      body: JSON.stringify({ event_type: 'bench.broadcast', data: { sent_at: performance.timeOrigin + performance.now() } }),
    })
    await client.reply('delivered')
  }
  await client.command('drop', 'dropped')
  for (let i = 0; i < 200 && (await openStreams()) > 0; i++) await Bun.sleep(25)
  afterDrops.push(await liveHeapBytes())
}
client.exit()
const result = {
  streams,
  cycles,
  hubEmpty: (await openStreams()) === 0,
  liveHeapBytesBefore: before,
  liveHeapBytesAfterEachDrop: afterDrops,
  // What is legitimately kept: each client's replay history of the broadcasts (SSE_HISTORY_TTL_MS).
  growthFirstToLast: afterDrops.at(-1)! / afterDrops[0]! - 1,
}
await gateway.shutdown(100)
console.log(JSON.stringify(result))
process.exit(0)
