/** A TCP relay on 127.0.0.1 that a test can sever, to cut connections the way a network would. */
import net from 'node:net'

export interface TcpRelay {
  port: number
  /** Destroys every connection passing through now; new ones are relayed again. */
  severAll(): void
  close(): void
}

export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const open = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const socket of [client, upstream]) {
      open.add(socket)
      socket.on('close', () => open.delete(socket))
      socket.on('error', () => {})
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const severAll = () => {
    for (const socket of open) socket.destroy()
  }
  return {
    port: (server.address() as net.AddressInfo).port,
    severAll,
    close() {
      severAll()
      server.close()
    },
  }
}
