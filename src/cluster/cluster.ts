/**
 * Joining the cluster (README, "Cluster mode"): when `REDIS_URL` is set, this gateway is one of
 * several sharing a Redis. The link connects in the background; the start never waits for it.
 */
import type { Config } from '../config/settings'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import { type LocalStreams, Presence } from './presence'
import { RedisLink } from './redis-link'

/** This process's streams (the events hub), as presence reads and follows them. */
export interface ClusterStreams extends LocalStreams {
  /** Registers the one listener told when a client's count of streams here changes. */
  onStreamCountChange(listener: (clientId: string, count: number) => void): void
}

export interface Cluster {
  link: RedisLink
  presence: Presence
  /** `REDIS_KEY_PREFIX`: on every key and channel. */
  prefix: string
}

/** @returns null for the embedded single process (no `REDIS_URL`). */
export function joinCluster(config: Config, hub: ClusterStreams, logger: Logger, metrics: Metrics): Cluster | null {
  if (config.redisUrl === null) return null
  const link = new RedisLink({ url: config.redisUrl, logger, metrics })
  const presence = new Presence(link, config.redisKeyPrefix, crypto.randomUUID(), hub)
  hub.onStreamCountChange((clientId, count) => presence.streamsChanged(clientId, count))
  presence.start()
  link.start()
  return { link, presence, prefix: config.redisKeyPrefix }
}
