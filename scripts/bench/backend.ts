/** The benchmark backend: a ~100-byte JSON answer to every request, on 127.0.0.1. */
export {}
const port = Number(process.argv[2] ?? 0)
const body = JSON.stringify({ id: 'run-0001', status: 'succeeded', steps: 12, duration_ms: 4821, owner: 'bench' })
const headers = { 'content-type': 'application/json' }

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch: () => new Response(body, { headers }),
})
console.log(JSON.stringify({ port: server.port, bytes: body.length }))
