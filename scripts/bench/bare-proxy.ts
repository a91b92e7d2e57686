/**
 * The proxy baseline: the least a correct Bun `fetch` proxy does — forward method, path, query,
 * headers and body, drop the hop-by-hop headers both ways (RFC 9110 §7.6.1), and return the
 * backend's response. No log, limits, ids, metrics, forwarding headers or timeouts. Written
 * apart from the gateway's code so that it stays a baseline.
 */
export {}
const backend = `http://127.0.0.1:${process.argv[2]}`
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

function dropHopByHop(headers: Headers): Headers {
  const named = headers.get('connection')
  if (named !== null) for (const name of named.split(',')) headers.delete(name.trim())
  for (const name of HOP_BY_HOP) headers.delete(name)
  return headers
}

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.argv[3] ?? 0),
  async fetch(request) {
    const url = request.url
    const init = { method: request.method, headers: dropHopByHop(request.headers), body: request.body, redirect: 'manual', decompress: false }
    const response = await fetch(backend + url.slice(url.indexOf('/', url.indexOf('//') + 2)), init as RequestInit)
    dropHopByHop(response.headers)
    return response
  },
})
console.log(JSON.stringify({ port: server.port }))
