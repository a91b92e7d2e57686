/**
 * The broker factory: the gateway holds a `Broker` and never knows which kind is behind it.
 * The embedded default keeps its state in this process (`MemoryBroker`); in cluster mode it is
 * shared through Redis (`RedisBroker`).
 */
import type { Cluster } from '../cluster/cluster'
import type { Config } from '../config/settings'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import type { Broker } from './broker'
import type { Hub } from './hub'
import { MemoryBroker } from './memory-broker'
import { RedisBroker } from './redis-broker'

/** Time a claimed answer stays claimed beyond the hitl service's own deadline, should its gateway die. */
const CLAIM_LEASE_MARGIN_MS = 10_000

/** @example const broker = createBroker(config, hub, metrics, logger, joinCluster(config, hub, logger, metrics)) */
export function createBroker(config: Config, hub: Hub, metrics: Metrics, logger: Logger, cluster: Cluster | null): Broker {
  if (cluster === null) return new MemoryBroker(hub, config.events, metrics)
  return new RedisBroker({
    hub,
    config: config.events,
    link: cluster.link,
    presence: cluster.presence,
    prefix: cluster.prefix,
    metrics,
    logger,
    claimLeaseMs: config.upstreamTimeoutMs + CLAIM_LEASE_MARGIN_MS,
  })
}
