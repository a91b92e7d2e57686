/** A minimal EventSource for tests: parses frames, records them, and lets a test wait for one. */

export interface ReceivedEvent {
  /** The `id:` line, or undefined when the frame had none. */
  id?: string
  event: string
  data: { id: string; event_type: string; timestamp: string; data: any }
}

export interface TestStream {
  response: Response
  events: ReceivedEvent[]
  /** Resolves with the first event (already received or to come) that matches. */
  waitFor(match: (event: ReceivedEvent) => boolean, timeoutMs?: number): Promise<ReceivedEvent>
  /** Resolves when the server ends the stream. */
  ended: Promise<void>
  close(): void
}

/**
 * @param tls for an HTTPS gateway: the CA that signed its certificate (Bun's `fetch` option).
 * @example const stream = await openStream(`${gw.url}/api/v1/events/alice`)
 */
export async function openStream(url: string, headers: Record<string, string> = {}, tls?: { ca: string }): Promise<TestStream> {
  const controller = new AbortController()
  const response = await fetch(url, { headers, signal: controller.signal, ...(tls === undefined ? {} : { tls }) })
  const events: ReceivedEvent[] = []
  const waiters: { match: (e: ReceivedEvent) => boolean; resolve: (e: ReceivedEvent) => void }[] = []
  const ended = (async () => {
    if (!response.body) return
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true })
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = parseFrame(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          events.push(event)
          for (const waiter of [...waiters]) {
            if (waiter.match(event)) {
              waiters.splice(waiters.indexOf(waiter), 1)
              waiter.resolve(event)
            }
          }
        }
      }
    } catch {
      // aborted by close()
    }
  })()
  return {
    response,
    events,
    ended,
    waitFor(match, timeoutMs = 3_000) {
      const found = events.find(match)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ')}`)), timeoutMs)
        waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) })
      })
    },
    close: () => controller.abort(),
  }
}

function parseFrame(frame: string): ReceivedEvent {
  const fields: Record<string, string> = {}
  for (const line of frame.split('\n')) {
    const colon = line.indexOf(':')
    fields[line.slice(0, colon)] = line.slice(colon + 2)
  }
  return { id: fields.id, event: fields.event ?? 'message', data: JSON.parse(fields.data ?? 'null') }
}

/** Publishes from loopback (allowed without a token); returns status and JSON body. */
export async function publish(gatewayUrl: string, clientId: string | null, body: unknown, headers: Record<string, string> = {}) {
  const url = clientId === null ? `${gatewayUrl}/api/v1/events` : `${gatewayUrl}/api/v1/events/${clientId}`
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, headers: response.headers, body: (await response.json()) as any }
}

/**
 * The envelope a broker's framed event carries (its `data:` line), to compare with what was published.
 * @example expect((await broker.retainedAfter('alice', '0')).events.map(envelopeOf)).toEqual([published])
 */
export function envelopeOf(event: { frame: Uint8Array }): ReceivedEvent['data'] {
  const text = new TextDecoder().decode(event.frame)
  const data = /^data: (.*)$/m.exec(text)
  if (data === null) throw new Error(`not an event frame: ${JSON.stringify(text)}`)
  return JSON.parse(data[1]!)
}
