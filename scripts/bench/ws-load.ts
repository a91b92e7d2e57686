/**
 * WebSocket echo load: `bun ws-load.ts <url> <connections> <seconds> <bytes>`. Each connection
 * sends a message, waits for its echo, and sends the next, for the given time. Prints one JSON
 * line: messages per second and the round-trip percentiles.
 */
export {}
const [url, connectionsArg, secondsArg, bytesArg] = process.argv.slice(2)
const connections = Number(connectionsArg ?? 64)
const seconds = Number(secondsArg ?? 5)
const payload = 'x'.repeat(Number(bytesArg ?? 64))

const latencies: number[] = []
let errors = 0
const deadline = performance.now() + seconds * 1000

async function run(): Promise<void> {
  const socket = new WebSocket(url!)
  await new Promise((resolve, reject) => ((socket.onopen = resolve), (socket.onerror = reject)))
  await new Promise<void>((resolve) => {
    let sentAt = 0
    const send = () => {
      if (performance.now() >= deadline) {
        socket.close()
        resolve()
        return
      }
      sentAt = performance.now()
      socket.send(payload)
    }
    socket.onmessage = (event) => {
      if (event.data !== payload) errors++
      latencies.push(performance.now() - sentAt)
      send()
    }
    socket.onclose = () => resolve()
    send()
  })
}

const started = performance.now()
await Promise.all(Array.from({ length: connections }, () => run().catch(() => void errors++)))
const elapsed = (performance.now() - started) / 1000
latencies.sort((a, b) => a - b)
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
console.log(JSON.stringify({ messagesPerSecond: latencies.length / elapsed, messages: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), errors }))
