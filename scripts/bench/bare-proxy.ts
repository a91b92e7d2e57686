/**
 * The proxy baseline: the least a Bun `fetch` proxy can do — forward method, path, query,
 * headers and body, and return the backend's response. No log, limits, ids, metrics or
 * header rules.
 */
export {}
const backend = `http://127.0.0.1:${process.argv[2]}`
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.argv[3] ?? 0),
  fetch(request) {
    const url = request.url
    const init = { method: request.method, headers: request.headers, body: request.body, redirect: 'manual', decompress: false }
    return fetch(backend + url.slice(url.indexOf('/', url.indexOf('//') + 2)), init as RequestInit)
  },
})
console.log(JSON.stringify({ port: server.port }))
