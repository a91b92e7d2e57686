/**
 * Bun 1.4's `TracingChannel` lacks `hasSubscribers` (Node.js ≥ 22 has it). pino asks it before
 * every log line (`asJsonChan.hasSubscribers === false`) and, seeing `undefined`, runs each line
 * through `traceSync`, which profiles put at about 8% of a proxied request. This restores
 * Node's definition: true when any of the five sub-channels has a subscriber.
 */
import { tracingChannel } from 'node:diagnostics_channel'

type TracingParts = Record<'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error', { hasSubscribers: boolean }>

const prototype = Object.getPrototypeOf(tracingChannel('api-gateway:probe')) as object
if (!('hasSubscribers' in prototype)) {
  Object.defineProperty(prototype, 'hasSubscribers', {
    configurable: true,
    get(this: TracingParts) {
      return (
        this.start.hasSubscribers ||
        this.end.hasSubscribers ||
        this.asyncStart.hasSubscribers ||
        this.asyncEnd.hasSubscribers ||
        this.error.hasSubscribers
      )
    },
  })
}
