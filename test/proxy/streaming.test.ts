import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

const encoder = new TextEncoder()

/** A promise with its resolver outside, for "wait until the backend saw X". */
function signal<T = void>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

describe('request bodies stream to the backend', () => {
  let backend: MockBackend
  let gw: RunningGateway
  const firstChunkSeen = signal<string>()
  let totalBytes = signal<number>()

  beforeAll(async () => {
    backend = startBackend(async (request) => {
      const reader = request.body!.getReader()
      const first = await reader.read()
      firstChunkSeen.resolve(new TextDecoder().decode(first.value))
      let total = first.value?.byteLength ?? 0
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        total += value.byteLength
      }
      totalBytes.resolve(total)
      return Response.json({ total })
    }, { readBody: false })
    gw = await startGateway({ UPLOAD_URL: backend.url, MAX_BODY_BYTES: String(8 * 1024 * 1024) })
  })
  afterAll(async () => {
    await gw.stop()
    backend.stop()
  })

  test('the backend reads the first chunk of a 5 MB chunked upload before the client has sent the rest', async () => {
    const sendRest = signal()
    const chunk = new Uint8Array(64 * 1024).fill(97)
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode('first-chunk'))
        await sendRest.promise
        for (let sent = 0; sent < 5 * 1024 * 1024; sent += chunk.byteLength) controller.enqueue(chunk)
        controller.close()
      },
    })
    const response = fetch(`${gw.url}/api/v1/upload/stream`, { method: 'POST', body })
    // The gateway forwarded the first bytes while the client still holds back 5 MB: nothing is buffered whole.
    expect(await firstChunkSeen.promise).toBe('first-chunk')
    sendRest.resolve()
    expect(await (await response).json()).toEqual({ total: 11 + 5 * 1024 * 1024 })
  })
})

describe('responses stream to the client', () => {
  let backend: MockBackend
  let gw: RunningGateway
  const releases: (() => void)[] = []

  beforeAll(async () => {
    backend = startBackend((request, server) => {
      server.timeout(request, 0)
      let release!: () => void
      const released = new Promise<void>((r) => (release = r))
      releases.push(release)
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode('id: 1\ndata: first\n\n'))
          await released
          controller.enqueue(encoder.encode('id: 2\ndata: second\n\n'))
          controller.close()
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
    })
    gw = await startGateway({ EVENTS_SOURCE_URL: backend.url })
  })
  afterAll(async () => {
    await gw.stop()
    backend.stop()
  })

  test('an event-stream reaches the client event by event, before the backend finishes', async () => {
    const response = await fetch(`${gw.url}/api/v1/events_source/stream`)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    const reader = response.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('id: 1\ndata: first\n\n')
    releases.shift()!()
    let rest = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      rest += new TextDecoder().decode(value)
    }
    expect(rest).toBe('id: 2\ndata: second\n\n')
  })
})
