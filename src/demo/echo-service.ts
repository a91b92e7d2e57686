/**
 * The demo's `echo` service (README, "Demo"): answers any request with what reached it, as
 * JSON, so a newcomer sees what the gateway forwards (its `X-Forwarded-*`, `X-Request-Id`,
 * `traceparent`…). The values of `Authorization` and `Cookie` are masked: a page that shows
 * this answer never shows a credential.
 */
import type { Server } from 'bun'

const MASKED_HEADERS = new Set(['authorization', 'cookie'])

export interface EchoAnswer {
  method: string
  path: string
  query: Record<string, string | string[]>
  headers: Record<string, string>
  body: string
}

/** @example const echo = startEchoService(); fetch(`${echo.url}/x?a=1`) */
export function startEchoService(): { url: string; server: Server<unknown> } {
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const url = new URL(request.url)
      const query: Record<string, string | string[]> = {}
      for (const name of new Set(url.searchParams.keys())) {
        const values = url.searchParams.getAll(name)
        query[name] = values.length === 1 ? values[0]! : values
      }
      const headers: Record<string, string> = {}
      for (const [name, value] of request.headers) headers[name] = MASKED_HEADERS.has(name) ? '***' : value
      const answer: EchoAnswer = { method: request.method, path: url.pathname, query, headers, body: await request.text() }
      return Response.json(answer)
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, server }
}
