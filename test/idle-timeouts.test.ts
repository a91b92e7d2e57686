/**
 * No idle cut-off on long-lived streams and WebSocket sessions. Bun closes connections idle
 * for 10 s and Elysia's listen() for 30 s unless the gateway lifts the timeout per request;
 * each test here stays silent for 40 s, so they run concurrently.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from './helpers/backend'
import { type RunningGateway, startGateway } from './helpers/gateway'
import { openStream, publish } from './helpers/sse-client'

const SILENCE_MS = 40_000
const encoder = new TextEncoder()

let backend: MockBackend
let gw: RunningGateway
/** A WebSocket backend that echoes, and never pings or times out on its own. */
let wsBackend: ReturnType<typeof Bun.serve>

beforeAll(async () => {
  backend = startBackend((request, server) => {
    server.timeout(request, 0)
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode('id: 1\ndata: first\n\n'))
        await Bun.sleep(SILENCE_MS)
        controller.enqueue(encoder.encode('id: 2\ndata: second\n\n'))
        controller.close()
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  })
  // Heartbeats slower than the silence, so nothing but the lifted timeout keeps the stream open.
  wsBackend = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    fetch: (request, server) => (server.upgrade(request, { data: undefined }) ? undefined : new Response('no', { status: 400 })),
    websocket: { idleTimeout: 0, sendPings: false, message: (ws, message) => void ws.send(message) },
  })
  gw = await startGateway({ QUIET_URL: backend.url, SSE_HEARTBEAT_MS: '120000', ECHO_URL: `http://127.0.0.1:${wsBackend.port}` })
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
  wsBackend.stop(true)
})

test.concurrent(
  'a proxied event-stream survives 40 s of silence from the backend',
  async () => {
    const response = await fetch(`${gw.url}/api/v1/quiet/stream`)
    expect(await response.text()).toBe('id: 1\ndata: first\n\nid: 2\ndata: second\n\n')
  },
  SILENCE_MS + 15_000,
)

test.concurrent(
  "the gateway's own event stream survives 40 s without events or heartbeats",
  async () => {
    const stream = await openStream(`${gw.url}/api/v1/events/quiet-client`)
    await stream.waitFor((e) => e.event === 'connection.established')
    await Bun.sleep(SILENCE_MS)
    const { body } = await publish(gw.url, 'quiet-client', { event_type: 'late', data: {} })
    expect(body.delivered).toBe(1)
    expect((await stream.waitFor((e) => e.event === 'late')).id).toBe(body.id)
    stream.close()
  },
  SILENCE_MS + 15_000,
)

/** Longer than the 60 s after which the gateway closes a client that answers no ping. */
const WEBSOCKET_SILENCE_MS = 70_000

test.concurrent(
  'a proxied WebSocket session survives 70 s of silence both ways: the gateway pings, the client answers',
  async () => {
    const socket = new WebSocket(`${gw.url.replace('http', 'ws')}/api/v1/echo/quiet`)
    await new Promise((resolve, reject) => ((socket.onopen = resolve), (socket.onerror = reject)))
    let closedEarly = false
    socket.onclose = () => (closedEarly = true)
    await Bun.sleep(WEBSOCKET_SILENCE_MS)
    expect(closedEarly).toBe(false)
    const echoed = new Promise((resolve) => (socket.onmessage = (event) => resolve(event.data)))
    socket.send('still here')
    expect(await echoed).toBe('still here')
    socket.close()
  },
  WEBSOCKET_SILENCE_MS + 15_000,
)
