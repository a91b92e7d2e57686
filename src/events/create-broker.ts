/**
 * The broker factory: the gateway holds a `Broker` and never knows which kind is behind it.
 * The embedded default keeps its state in this process (`MemoryBroker`).
 */
import type { EventsConfig } from '../config'
import type { Metrics } from '../ops/metrics'
import type { Broker } from './broker'
import type { Hub } from './hub'
import { MemoryBroker } from './memory-broker'

/** @example const broker = createBroker(config.events, hub, metrics) */
export function createBroker(config: EventsConfig, hub: Hub, metrics: Metrics): Broker {
  return new MemoryBroker(hub, config, metrics)
}
