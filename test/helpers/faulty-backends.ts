/** Backends that fail the way real ones do, on raw sockets: one that never answers, one that resets. */
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
