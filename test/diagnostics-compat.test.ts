import { expect, test } from 'bun:test'
import { tracingChannel } from 'node:diagnostics_channel'
import '../src/ops/diagnostics-compat'

test('TracingChannel.hasSubscribers is false without subscribers and true with one (as in Node.js)', () => {
  const channel = tracingChannel('api-gateway:test') as unknown as { hasSubscribers: boolean; start: { subscribe(f: () => void): void; unsubscribe(f: () => void): void } }
  expect(channel.hasSubscribers).toBe(false)
  const listener = () => {}
  channel.start.subscribe(listener)
  expect(channel.hasSubscribers).toBe(true)
  channel.start.unsubscribe(listener)
  expect(channel.hasSubscribers).toBe(false)
})
