/** Raw HTTP/1.1 over TCP, for what `fetch` would normalize or refuse to send. */
import net from 'node:net'

export interface RawResponse {
  status: number
  headers: Map<string, string[]>
  body: string
  /** The bytes exactly as received. */
  raw: string
  /** Whether the server closed the connection. */
  closed: boolean
}

/**
 * Sends `request` (CRLFs included) and collects the answer until the connection closes or `waitMs` passes.
 * @example await rawRequest(port, 'GET /a%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
 */
export function rawRequest(port: number, request: string | Uint8Array, waitMs = 2000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let raw = ''
    let closed = false
    const finish = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(parseResponse(raw, closed))
    }
    const timer = setTimeout(finish, waitMs)
    socket.on('data', (chunk) => {
      raw += chunk.toString('latin1')
    })
    socket.on('error', reject)
    socket.on('close', () => {
      closed = true
      finish()
    })
    socket.write(request)
  })
}

export function parseResponse(raw: string, closed = false): RawResponse {
  const headerEnd = raw.indexOf('\r\n\r\n')
  const head = headerEnd === -1 ? raw : raw.slice(0, headerEnd)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers = new Map<string, string[]>()
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon === -1) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()])
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: headerEnd === -1 ? '' : raw.slice(headerEnd + 4), raw, closed }
}
