/** Mock backends: real `Bun.serve` servers on 127.0.0.1 and a free port, recording what reached them. */
import type { Server } from 'bun'

export interface SeenRequest {
  method: string
  /** Path and query exactly as received. */
  target: string
  headers: Headers
  body: string
  /** The client port of the socket it came on (keep-alive reuse shows as a repeated port). */
  peerPort: number
}

export interface MockBackend {
  url: string
  port: number
  server: Server<unknown>
  seen: SeenRequest[]
  stop(): void
}

type Handler = (request: Request, server: Server<unknown>) => Response | Promise<Response>

/**
 * @example const backend = startBackend(() => Response.json({ ok: true }))
 */
export function startBackend(handler: Handler = () => Response.json({ ok: true }), options: { readBody?: boolean } = {}): MockBackend {
  const seen: SeenRequest[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    async fetch(request, server) {
      const url = request.url
      const record: SeenRequest = {
        method: request.method,
        target: url.slice(url.indexOf('/', url.indexOf('//') + 2)),
        headers: request.headers,
        body: '',
        peerPort: server.requestIP(request)?.port ?? 0,
      }
      seen.push(record)
      if (options.readBody !== false && request.body) record.body = await request.text()
      return handler(request, server)
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    server,
    seen,
    stop: () => server.stop(true),
  }
}

/** A port on 127.0.0.1 where nothing listens. */
export async function closedPort(): Promise<number> {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  await probe.stop(true)
  return port
}
