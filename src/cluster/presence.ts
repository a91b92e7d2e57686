/**
 * Which clients have streams open where, across the cluster (README, "Cluster mode"). It makes
 * `delivered` and the broadcast-to-connected form mean the whole cluster.
 *
 * Each instance keeps, in Redis:
 * - `<prefix>instances`: a sorted set of instance ids, scored by their last heartbeat (Redis time);
 * - `<prefix>streams:<instance>`: a hash of client id → streams open on that instance, written
 *   as absolute counts (idempotent, so a retry or a reordering cannot skew it), expiring
 *   `PRESENCE_WINDOW_MS` after the last heartbeat.
 *
 * An instance counts as live while its heartbeat is younger than `PRESENCE_WINDOW_MS`, so one
 * that dies drops out within that window; its hash expires by itself.
 */
import type { RedisLink } from './redis-link'
import { RedisScript } from './redis-link'

/** An instance whose last heartbeat is older than this no longer counts. */
export const PRESENCE_WINDOW_MS = 30_000
/** Heartbeats come three times per window, so one lost heartbeat never drops a live instance. */
const HEARTBEAT_INTERVAL_MS = 10_000

/**
 * KEYS: streams hash, instances set. ARGV: instance id, window, '1' to replace the whole hash
 * (else update it), then client/count pairs (count 0 deletes).
 */
const WRITE_COUNTS = new RedisScript(`
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '0' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
return 1
`)

/** The local streams per client, as the hub knows them. */
export interface LocalStreams {
  streamCounts(): Iterable<[clientId: string, count: number]>
}

export class Presence {
  private heartbeat: Timer | undefined
  private readonly streamsKey: string
  private readonly instancesKey: string

  constructor(
    private readonly link: RedisLink,
    prefix: string,
    readonly instanceId: string,
    private readonly local: LocalStreams,
  ) {
    this.streamsKey = presenceStreamsKey(prefix, instanceId)
    this.instancesKey = presenceInstancesKey(prefix)
  }

  /** Heartbeats from now on, and a full rewrite after every reconnect. */
  start(): void {
    this.heartbeat = setInterval(() => void this.write([]), HEARTBEAT_INTERVAL_MS)
    this.heartbeat.unref()
    this.link.onReconnect(() => void this.rewrite())
  }

  /** The hub's count of `clientId`'s streams changed. Best effort: a lost write is repaired at the next reconnect. */
  streamsChanged(clientId: string, count: number): void {
    if (this.link.isUp) void this.write([clientId, String(count)])
  }

  /** Leaves the registry (shutdown): the cluster stops counting this instance's streams at once. */
  async leave(): Promise<void> {
    clearInterval(this.heartbeat)
    if (!this.link.isUp) return
    await Promise.all([this.link.send('DEL', [this.streamsKey]), this.link.send('ZREM', [this.instancesKey, this.instanceId])]).catch(() => {})
  }

  /**
   * Replaces this instance's hash with what the hub holds now, in one script sent at once: the
   * writes of streams closing after this snapshot reach Redis after it (one connection, in order).
   */
  private rewrite(): Promise<void> {
    const pairs: string[] = []
    for (const [clientId, count] of this.local.streamCounts()) pairs.push(clientId, String(count))
    return this.write(pairs, true)
  }

  private async write(pairs: string[], replace = false): Promise<void> {
    if (!this.link.isUp) return
    const args = [this.instanceId, String(PRESENCE_WINDOW_MS), replace ? '1' : '0', ...pairs]
    await this.link.eval(WRITE_COUNTS, [this.streamsKey, this.instancesKey], args).catch(() => {})
  }
}

export const presenceInstancesKey = (prefix: string) => `${prefix}instances`
export const presenceStreamsKey = (prefix: string, instanceId: string) => `${prefix}streams:${instanceId}`
