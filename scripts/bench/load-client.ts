/**
 * Driving the SSE load client (`sse-load.ts`, a process of its own) from the harness: a command
 * line in, and the JSON reply that answers it out.
 */
import type { Subprocess } from 'bun'

/** One JSON line of the load client; its fields depend on `event`. */
export type Reply = Record<string, any>

export interface LoadClient {
  process: Subprocess<'pipe', 'pipe', 'inherit'>
  /** Sends `text` and resolves with the first reply whose `event` is `until`. */
  command(text: string, until: string): Promise<Reply>
  /** Resolves with the next reply whose `event` is `until` (for replies that come on their own). */
  reply(until: string): Promise<Reply>
  exit(): void
}

/**
 * @param command how to start it, e.g. `pinned(CLIENT_CORE, ['bun', '…/sse-load.ts'])`
 */
export function startLoadClient(command: string[]): LoadClient {
  const child = Bun.spawn(command, { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  const replies = lines(child.stdout)
  const reply = async (until: string) => {
    for (;;) {
      const next = await replies.next()
      if (next.done) throw new Error(`load client exited while waiting for ${until}`)
      const message = JSON.parse(next.value) as Reply
      if (message.event === until) return message
    }
  }
  const send = (text: string) => {
    child.stdin.write(`${text}\n`)
    child.stdin.flush()
  }
  return {
    process: child,
    command(text, until) {
      send(text)
      return reply(until)
    },
    reply,
    exit: () => send('exit'),
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true })
    let end: number
    while ((end = buffer.indexOf('\n')) !== -1) {
      yield buffer.slice(0, end)
      buffer = buffer.slice(end + 1)
    }
  }
}
