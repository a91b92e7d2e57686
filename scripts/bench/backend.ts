/**
 * The benchmark backend on 127.0.0.1: a ~100-byte JSON answer to every request, and a
 * WebSocket echo for every upgrade.
 */
export {}
const port = Number(process.argv[2] ?? 0)
const body = JSON.stringify({ id: 'run-0001', status: 'succeeded', steps: 12, duration_ms: 4821, owner: 'bench' })
const headers = { 'content-type': 'application/json' }

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch: (request, server) => (request.headers.get('upgrade') === 'websocket' && server.upgrade(request, { data: undefined }) ? undefined : new Response(body, { headers })),
  websocket: { idleTimeout: 0, message: (ws, message) => void ws.send(message) },
})
console.log(JSON.stringify({ port: server.port, bytes: body.length }))
