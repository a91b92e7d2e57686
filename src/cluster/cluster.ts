/**
 * Joining the cluster (README, "Cluster mode"): when `REDIS_URL` is set, this gateway is one of
 * several sharing a Redis. The link connects in the background; the start never waits for it.
 */
import type { Config } from '../config'
import type { Hub } from '../events/hub'
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import { Presence } from './presence'
import { RedisLink } from './redis-link'

export interface Cluster {
  link: RedisLink
  presence: Presence
  /** `REDIS_KEY_PREFIX`: on every key and channel. */
  prefix: string
}

/** @returns null for the embedded single process (no `REDIS_URL`). */
export function joinCluster(config: Config, hub: Hub, logger: Logger, metrics: Metrics): Cluster | null {
  if (config.redisUrl === null) return null
  const link = new RedisLink({ url: config.redisUrl, logger, metrics })
  const presence = new Presence(link, config.redisKeyPrefix, crypto.randomUUID(), hub)
  hub.onStreamCountChange((clientId, count) => presence.streamsChanged(clientId, count))
  presence.start()
  link.start()
  return { link, presence, prefix: config.redisKeyPrefix }
}
