/**
 * The feature ladder: how much each thing the gateway must do costs at the very least. A bare
 * Bun `fetch` proxy with the hop-by-hop rules (rung 0) adds, one rung at a time, the cheapest
 * possible form of each required feature. The last rung is the floor under any gateway with
 * these features on this machine; `run.ts --only ladder` measures every rung in one run.
 *
 *   bun scripts/bench/feature-ladder.ts <rung> <backend port> <listen port>
 */
import { openSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'

export const RUNGS = [
  'bare proxy, hop-by-hop rules both ways',
  '+ abort controller on the upstream fetch (header timeout, client abort)',
  '+ X-Forwarded-For/-Proto/-Host and X-Request-Id upstream (Host removed)',
  '+ client IP from the socket (server.requestIP)',
  '+ X-Request-Id and RateLimit-* on the response',
  '+ one JSON access-log line, batched to a file',
] as const

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

function dropHopByHop(headers: Headers): Headers {
  const named = headers.get('connection')
  if (named !== null) for (const name of named.split(',')) headers.delete(name.trim())
  for (const name of HOP_BY_HOP) headers.delete(name)
  return headers
}

function serve(rung: number, backendPort: number, port: number): void {
  const backend = `http://127.0.0.1:${backendPort}`
  const log = openSync(`${tmpdir()}/feature-ladder-${process.pid}.log`, 'w')
  let pending = ''
  setInterval(() => {
    if (pending === '') return
    writeSync(log, pending)
    pending = ''
  }, 100)
  let stampedAt = 0
  let stamp = ''
  let issued = 0

  Bun.serve({
    hostname: '127.0.0.1',
    port,
    async fetch(request, server) {
      const started = performance.now()
      const url = request.url
      const method = request.method
      const headers = dropHopByHop(request.headers)
      const requestId = `bench-${++issued}`
      const peer = rung >= 3 ? server.requestIP(request)!.address : '127.0.0.1'
      if (rung >= 2) {
        const host = headers.get('host')
        headers.delete('host')
        const forwardedFor = headers.get('x-forwarded-for')
        headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${peer}` : peer)
        headers.set('x-forwarded-proto', 'http')
        if (host !== null) headers.set('x-forwarded-host', host)
        headers.set('x-request-id', requestId)
      }
      const controller = rung >= 1 ? new AbortController() : undefined
      const init = { method, headers, body: request.body, redirect: 'manual', decompress: false, signal: controller?.signal }
      const response = await fetch(backend + url.slice(url.indexOf('/', url.indexOf('//') + 2)), init as RequestInit)
      dropHopByHop(response.headers)
      if (rung >= 4) {
        const out = response.headers
        if (!out.has('x-request-id')) out.set('x-request-id', requestId)
        out.set('ratelimit-limit', '1000000000')
        out.set('ratelimit-remaining', '999999999')
        out.set('ratelimit-reset', '1')
      }
      if (rung >= 5) {
        const now = Date.now()
        if (now !== stampedAt) stamp = new Date((stampedAt = now)).toISOString()
        pending += `{"level":"info","time":"${stamp}","service":"bench","target_url":"${backend}","method":"${method}","path":"/runs/1","status":${response.status},"duration_ms":${Math.round(performance.now() - started)},"request_id":"${requestId}","client_ip":"${peer}","msg":"Proxied request"}\n`
      }
      return response
    },
  })
}

// Imported by ladder-scenarios.ts for the rung names; a server only when run.
if (import.meta.main) serve(Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]))
