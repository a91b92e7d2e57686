/**
 * The least a Bun WebSocket proxy does, as a baseline: `bun bare-ws-relay.ts <backendPort> <port>`.
 * Upgrades every client at once, opens the backend's socket, and relays messages both ways
 * (buffering the client's until the backend is open). No admission, headers, limits or logs.
 */
import type { ServerWebSocket } from 'bun'

const backendPort = Number(process.argv[2])
const port = Number(process.argv[3] ?? 0)

interface Relay {
  backend: WebSocket
  early: (string | Buffer)[]
}

const server = Bun.serve<Relay>({
  hostname: '127.0.0.1',
  port,
  fetch(request, server) {
    const url = new URL(request.url)
    const backend = new WebSocket(`ws://127.0.0.1:${backendPort}${url.pathname}`)
    backend.binaryType = 'arraybuffer'
    return server.upgrade(request, { data: { backend, early: [] } }) ? undefined : new Response('upgrade failed', { status: 400 })
  },
  websocket: {
    idleTimeout: 0,
    open(ws: ServerWebSocket<Relay>) {
      const { backend } = ws.data
      backend.onmessage = (event) => ws.send(event.data as string | ArrayBuffer)
      backend.onclose = () => ws.close()
      backend.onopen = () => {
        for (const message of ws.data.early) backend.send(message as string)
        ws.data.early = []
      }
    },
    message(ws, message) {
      if (ws.data.backend.readyState === WebSocket.OPEN) ws.data.backend.send(message as string)
      else ws.data.early.push(message)
    },
    close(ws) {
      ws.data.backend.close()
    },
  },
})
console.log(JSON.stringify({ port: server.port }))
