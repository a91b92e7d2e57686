/**
export {}
 * The SSE baseline: the least a Bun server can do for the same scenario — one `ReadableStream`
 * per connection in a Set, `connection.established` first, and a publish route that frames the
 * event once and enqueues it to every stream. No ids, history, limits or logs.
 */
const encoder = new TextEncoder()
const streams = new Set<ReadableStreamDefaultController<Uint8Array>>()
const established = encoder.encode('event: connection.established\ndata: {}\n\n')

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 0),
  idleTimeout: 0,
  async fetch(request) {
    if (request.method === 'POST') {
      const frame = encoder.encode(`event: bench\ndata: ${await request.text()}\n\n`)
      for (const controller of streams) controller.enqueue(frame)
      return Response.json({ delivered: streams.size }, { status: 202 })
    }
    if (new URL(request.url).pathname === '/metrics') return new Response(`gateway_sse_connections ${streams.size}\n`)
    let controller: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c
        c.enqueue(established)
        streams.add(c)
      },
      cancel() {
        streams.delete(controller)
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  },
})
console.log(JSON.stringify({ port: server.port }))
