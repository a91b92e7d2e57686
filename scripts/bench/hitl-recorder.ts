/**
 * The benchmarks' hitl service on 127.0.0.1: answers every POST 200 at once, and counts what
 * it received (distinct Idempotency-Keys, first and last arrival) for `GET /stats`.
 */
export {}
const port = Number(process.argv[2] ?? 0)
const keys = new Set<string>()
let posts = 0
let first = 0
let last = 0

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  async fetch(request) {
    if (request.method === 'GET') return Response.json({ posts, distinct: keys.size, first, last })
    if (request.method === 'DELETE') {
      keys.clear()
      posts = first = last = 0
      return new Response(null, { status: 204 })
    }
    await request.arrayBuffer()
    const now = Date.now()
    posts++
    keys.add(request.headers.get('idempotency-key') ?? '')
    if (first === 0) first = now
    last = now
    return Response.json({ ok: true })
  },
})
console.log(JSON.stringify({ port: server.port }))
