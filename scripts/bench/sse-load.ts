/**
 * The SSE load client: a process of its own holding N event streams on raw sockets (cheap, so
 * the client is not the bottleneck). Driven by line commands on stdin, it answers with JSON
 * lines on stdout:
 *
 *   connect <port> <n>  → {"event":"connected","streams":n,"ms":…}
 *   expect              → {"event":"delivered","received":n,"p50Ms":…,"p99Ms":…,"maxMs":…} once every
 *                         stream has seen an event whose data carries sent_at (epoch ms)
 *   drop                → {"event":"dropped"} once every socket is closed
 */
import type { Socket } from 'bun'

interface StreamState {
  established: boolean
  /** Delivery latency of the armed broadcast, once seen. */
  latencyMs?: number
}

const SENT_AT = /"sent_at":([\d.]+)/
const CONNECT_BATCH = 500
const DELIVERY_TIMEOUT_MS = 30_000

const sockets = new Map<Socket<StreamState>, StreamState>()
let armed = false
let onDelivered: (() => void) | undefined
let delivered = 0

const now = () => performance.timeOrigin + performance.now()
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`)

async function connect(port: number, count: number): Promise<void> {
  const started = performance.now()
  let established = 0
  let ready: () => void = () => {}
  const allReady = new Promise<void>((resolve) => (ready = resolve))
  for (let i = 0; i < count; i += CONNECT_BATCH) {
    const batch = []
    for (let j = i; j < Math.min(count, i + CONNECT_BATCH); j++) {
      batch.push(
        Bun.connect<StreamState>({
          hostname: '127.0.0.1',
          port,
          data: { established: false },
          socket: {
            open(socket) {
              sockets.set(socket, socket.data)
              socket.write(`GET /api/v1/events/bench-${j} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
            },
            data(socket, chunk) {
              const state = socket.data
              if (!state.established) {
                if (chunk.includes('connection.established')) {
                  state.established = true
                  if (++established === count) ready()
                }
              }
              if (armed && state.latencyMs === undefined) {
                const match = SENT_AT.exec(chunk.toString('latin1'))
                if (match) {
                  state.latencyMs = now() - Number(match[1])
                  if (++delivered === sockets.size) onDelivered?.()
                }
              }
            },
            close(socket) {
              sockets.delete(socket)
            },
            error() {},
          },
        }),
      )
    }
    await Promise.all(batch)
  }
  await allReady
  say({ event: 'connected', streams: sockets.size, ms: Math.round(performance.now() - started) })
}

async function expectBroadcast(): Promise<void> {
  for (const state of sockets.values()) state.latencyMs = undefined
  delivered = 0
  armed = true
  say({ event: 'armed' })
  await Promise.race([new Promise<void>((resolve) => (onDelivered = resolve)), Bun.sleep(DELIVERY_TIMEOUT_MS)])
  armed = false
  const latencies = [...sockets.values()].map((s) => s.latencyMs).filter((l): l is number => l !== undefined).sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
  say({ event: 'delivered', received: latencies.length, streams: sockets.size, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latencies.at(-1) ?? Number.NaN })
}

async function drop(): Promise<void> {
  for (const socket of sockets.keys()) socket.end()
  const deadline = Date.now() + 10_000
  while (sockets.size > 0 && Date.now() < deadline) await Bun.sleep(20)
  say({ event: 'dropped', remaining: sockets.size })
}

for await (const line of console) {
  const [command, ...args] = line.trim().split(/\s+/)
  if (command === 'connect') await connect(Number(args[0]), Number(args[1]))
  else if (command === 'expect') await expectBroadcast()
  else if (command === 'drop') await drop()
  else if (command === 'exit') process.exit(0)
}
