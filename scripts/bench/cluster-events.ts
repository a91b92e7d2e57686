/**
 * The cluster benchmark's load process (pinned apart from the servers): opens `streams` event
 * streams spread round-robin over the gateways given, then publishes through the first gateway
 * for `seconds` with `publishers` concurrent publishers, each event to one client in turn, and
 * measures how many events per second are accepted and how long each takes to reach its stream.
 *
 * Usage: bun cluster-events.ts <streams> <seconds> <publishers> <publish gateway url> <stream gateway url>...
 * Prints one JSON line.
 */
export {}
const [streamsArg, secondsArg, publishersArg, publishUrl, ...streamUrls] = process.argv.slice(2)
const streams = Number(streamsArg)
const seconds = Number(secondsArg)
const publishers = Number(publishersArg)
const now = () => performance.timeOrigin + performance.now()

const latencies: number[] = []
let connected = 0
const controllers: AbortController[] = []

/** One stream: counts frames carrying a send time, and records how late each arrived. */
async function openStream(url: string): Promise<void> {
  const controller = new AbortController()
  controllers.push(controller)
  const response = await fetch(url, { signal: controller.signal })
  const decoder = new TextDecoder()
  let buffer = ''
  let established = false
  try {
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk, { stream: true })
      const end = buffer.lastIndexOf('\n\n')
      if (end === -1) continue
      const frames = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      if (!established && frames.includes('connection.established')) {
        established = true
        connected++
      }
      const arrived = now()
      for (const match of frames.matchAll(/"sent_at":([\d.]+)/g)) latencies.push(arrived - Number(match[1]))
    }
  } catch {
    // Aborted at the end.
  }
}

for (let i = 0; i < streams; i++) void openStream(`${streamUrls[i % streamUrls.length]}/api/v1/events/bench-${i}`)
const openBy = Date.now() + 30_000
while (connected < streams && Date.now() < openBy) await Bun.sleep(20)
// Let presence settle (cluster mode writes it asynchronously).
await Bun.sleep(500)

let accepted = 0
let refused = 0
let delivered = 0
let next = 0
const stopAt = now() + seconds * 1000
async function publisher(): Promise<void> {
  while (now() < stopAt) {
    const client = `bench-${next++ % streams}`
    const response = await fetch(`${publishUrl}/api/v1/events/${client}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"event_type":"bench","data":{"sent_at":${now()}}}`,
    })
    if (response.status === 202) {
      accepted++
      delivered += ((await response.json()) as { delivered: number }).delivered
    } else {
      refused++
      await response.arrayBuffer()
    }
  }
}
await Promise.all(Array.from({ length: publishers }, publisher))
// Whatever is still in flight arrives within this.
const drainBy = Date.now() + 5_000
while (latencies.length < accepted && Date.now() < drainBy) await Bun.sleep(20)
for (const controller of controllers) controller.abort()

latencies.sort((a, b) => a - b)
const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? Number.NaN
console.log(
  JSON.stringify({
    streams: connected,
    eventsPerSecond: accepted / seconds,
    accepted,
    refused,
    deliveredReported: delivered,
    received: latencies.length,
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    maxMs: latencies.at(-1) ?? Number.NaN,
  }),
)
process.exit(0)
