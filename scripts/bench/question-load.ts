/**
 * The question benchmarks' load client, in its own process: `count` POSTs, `concurrency` at a
 * time, each to client `<prefix><i>`: publishing a question (`ask`) or answering it
 * (`answer`). Prints `{ seconds, statuses }` as JSON.
 *
 *   bun question-load.ts ask|answer <gateway url> <count> <concurrency> <prefix> <question JSON>
 */
export {}
const [mode, url, countText, concurrencyText, prefix, questionText] = process.argv.slice(2) as [string, string, string, string, string, string]
const count = Number(countText)
const concurrency = Number(concurrencyText)
const question = JSON.parse(questionText) as Record<string, unknown>
const statuses: Record<number, number> = {}
let next = 0

async function worker(): Promise<void> {
  while (next < count) {
    const i = next++
    const client = `${prefix}${i}`
    const body =
      mode === 'ask'
        ? { event_type: 'question', data: { question_id: 'q', prompt: 'Deploy?', ...question } }
        : { question_id: 'q', response: { approve: true, environment: 'production', note: `answer ${i}` } }
    const target = mode === 'ask' ? `${url}/api/v1/events/${client}` : `${url}/api/v1/events/${client}/response`
    const response = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    await response.arrayBuffer()
    statuses[response.status] = (statuses[response.status] ?? 0) + 1
  }
}

const started = performance.now()
await Promise.all(Array.from({ length: concurrency }, worker))
console.log(JSON.stringify({ seconds: (performance.now() - started) / 1000, statuses }))
