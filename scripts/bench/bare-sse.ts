/**
 * The SSE baseline: the least a Bun server can do for the same scenario — one stream per
 * connection in a Set, `connection.established` first, and a publish route that frames the
 * event once and writes it to every stream. No ids, history, limits or logs.
 *
 * `DIRECT=1` uses Bun's `type: "direct"` streams (written straight to the socket, no queue)
 * instead of a default `ReadableStream`, to measure whether they would deliver faster.
 */
export {}
const encoder = new TextEncoder()
const established = encoder.encode('event: connection.established\ndata: {}\n\n')

interface Writer {
  write(frame: Uint8Array): void
}

const streams = new Set<Writer>()

/** A default stream: frames are enqueued and Bun drains the queue to the socket. */
function queuedStream(): ReadableStream<Uint8Array> {
  let writer: Writer
  return new ReadableStream<Uint8Array>({
    start(controller) {
      writer = { write: (frame) => controller.enqueue(frame) }
      controller.enqueue(established)
      streams.add(writer)
    },
    cancel() {
      streams.delete(writer)
    },
  })
}

/** A direct stream: frames are written to the socket's buffer and flushed at once. */
function directStream(): ReadableStream<Uint8Array> {
  let writer: Writer
  return new ReadableStream({
    type: 'direct',
    pull(controller: { write(chunk: Uint8Array): void; flush(): void }) {
      writer = {
        write(frame) {
          controller.write(frame)
          controller.flush()
        },
      }
      writer.write(established)
      streams.add(writer)
      // The stream stays open until the client goes away.
      return new Promise<void>(() => {})
    },
    cancel() {
      streams.delete(writer)
    },
  } as unknown as UnderlyingDefaultSource<Uint8Array>)
}

const direct = process.env.DIRECT === '1'
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 0),
  idleTimeout: 0,
  async fetch(request) {
    if (request.method === 'POST') {
      const frame = encoder.encode(`event: bench\ndata: ${await request.text()}\n\n`)
      for (const writer of streams) writer.write(frame)
      return Response.json({ delivered: streams.size }, { status: 202 })
    }
    if (new URL(request.url).pathname === '/metrics') return new Response(`gateway_sse_connections ${streams.size}\n`)
    return new Response(direct ? directStream() : queuedStream(), { headers: { 'content-type': 'text/event-stream' } })
  },
})
console.log(JSON.stringify({ port: server.port }))
