/**
 * Backends that fail the way real ones do, on raw sockets: one that never answers, one that
 * resets, and a WebSocket backend that accepts and then misbehaves.
 */
import { createHash } from 'node:crypto'
import net from 'node:net'

export interface FaultyBackend {
  url: string
  port: number
  /** Connections accepted so far. */
  connections(): number
  stop(): void
}

function start(onConnection: (socket: net.Socket) => void): Promise<FaultyBackend> {
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    onConnection(socket)
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        connections: () => connections,
        stop() {
          for (const socket of sockets) socket.destroy()
          server.close()
        },
      })
    }),
  )
}

/** Accepts connections, reads, and never answers. */
export const startSilentBackend = () => start(() => {})

/** Resets the connection once a request has arrived: it reached the backend, and no byte came back. */
export const startResettingBackend = () => start((socket) => socket.once('data', () => socket.resetAndDestroy()))

/** RFC 6455 §1.3: the GUID a server appends to the client's key for `Sec-WebSocket-Accept`. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/**
 * A WebSocket backend on raw sockets, for what a Bun server will not do: it accepts every upgrade
 * after `acceptAfterMs`, choosing no subprotocol (Bun would echo the first offered), then hands
 * the socket to `afterAccept` and ignores every frame, a close frame included.
 * @example const deaf = await startRawWebSocketBackend({ afterAccept: (socket) => socket.on('close', ...) })
 */
export const startRawWebSocketBackend = ({ acceptAfterMs = 0, afterAccept }: { acceptAfterMs?: number; afterAccept?: (socket: net.Socket) => void } = {}) =>
  start((socket) =>
    socket.once('data', (chunk) => {
      const key = /sec-websocket-key: (\S+)/i.exec(chunk.toString('latin1'))?.[1] ?? ''
      const accept = createHash('sha1').update(`${key}${WEBSOCKET_GUID}`).digest('base64')
      setTimeout(() => {
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
        afterAccept?.(socket)
      }, acceptAfterMs)
    }),
  )
