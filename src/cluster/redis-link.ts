/**
 * The gateway's connection to Redis in cluster mode (README, "Cluster mode"): one client for
 * commands (Bun pipelines concurrent commands on it) and one for subscriptions, supervised
 * together. Nothing ever waits for a Redis that is not there:
 *
 * - commands are refused at once (`RedisUnavailable`) while the link is down, and every command
 *   has a deadline (`RedisTimeout`), because Bun's client would otherwise queue them until Redis
 *   returns; a missed deadline makes the link check itself at once;
 * - the start never waits for Redis: connecting happens in the background;
 * - a check every second (a PING on both connections) notices a dropped, hung or silently
 *   half-open connection (Bun's `onclose` does not always fire) and, while down, tries again, so
 *   the link is back within seconds of Redis;
 * - after a reconnect both clients are new: the subscriptions are made afresh on a fresh client,
 *   never re-made on an old one (which can deliver every message twice);
 * - the outage is logged once when it starts and once when it ends, never per request.
 */
import { RedisClient } from 'bun'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'

/** Why a command was not run: Redis is unreachable right now. */
export class RedisUnavailable extends Error {}

/** Redis did not answer in time: the command may or may not have run. */
export class RedisTimeout extends Error {}

/** A Lua script, run by its SHA1 and loaded on the first `NOSCRIPT`. */
export class RedisScript {
  readonly sha: string

  constructor(readonly source: string) {
    this.sha = new Bun.CryptoHasher('sha1').update(source).digest('hex')
  }
}

export type MessageListener = (message: string) => void

export interface RedisLinkOptions {
  url: string
  logger: Logger
  metrics: Metrics
  /** Deadline of every command. */
  commandTimeoutMs?: number
  /** How often the link is checked, and reconnected while down. */
  checkIntervalMs?: number
}

const DEFAULT_COMMAND_TIMEOUT_MS = 1_000
const DEFAULT_CHECK_INTERVAL_MS = 1_000
/** Bun reports Redis's own error replies (`ERR`, `NOSCRIPT`, `WRONGTYPE`) with this code. */
const SERVER_ERROR_CODE = 'ERR_REDIS_SERVER_ERROR'

type LinkState = 'connecting' | 'up' | 'down'

export class RedisLink {
  private commands: RedisClient | null = null
  private subscriber: RedisClient | null = null
  private readonly subscriptions = new Map<string, MessageListener>()
  private readonly reconnectListeners: (() => void)[] = []
  private state: LinkState = 'connecting'
  /** An outage was logged and its end is still to be logged. */
  private outageLogged = false
  private attempt: Promise<void> | null = null
  private checking: Promise<void> | null = null
  private checker: Timer | undefined
  private closed = false
  private readonly commandTimeoutMs: number
  private readonly checkIntervalMs: number

  constructor(private readonly options: RedisLinkOptions) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
    this.checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS
    options.metrics.redisConnected.set(0)
  }

  /** Connects in the background and keeps the link up from then on; never waits. */
  start(): void {
    this.reconnect()
    this.checker = setInterval(() => void this.check(), this.checkIntervalMs)
    this.checker.unref()
  }

  /** Connected, subscriptions included. */
  get isUp(): boolean {
    return this.state === 'up'
  }

  /** Resolves once the link is up (tests and benchmarks; the gateway itself never waits). */
  async waitUntilUp(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.isUp) {
      if (Date.now() > deadline) throw new RedisUnavailable('Redis did not become reachable in time')
      await Bun.sleep(20)
    }
  }

  /** Called after every reconnect, once the subscriptions are in place again. */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener)
  }

  /** Listens to `channel` from now on, across reconnects. */
  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    this.subscriptions.set(channel, listener)
    if (this.isUp && this.subscriber !== null) await this.subscriber.subscribe(channel, listener)
  }

  /**
   * Runs one command within its deadline (`timeoutMs`, else the link's).
   * @throws RedisUnavailable at once while the link is down, or when the connection fails now.
   * @throws RedisTimeout when Redis did not answer in time: the command may still have run.
   */
  async send(command: string, args: string[], timeoutMs = this.commandTimeoutMs): Promise<unknown> {
    const client = this.commands
    if (this.state !== 'up' || client === null) throw new RedisUnavailable('Redis is unreachable')
    const started = performance.now()
    try {
      const reply = await withDeadline(client.send(command, args), timeoutMs)
      this.options.metrics.redisCommandDuration.observe((performance.now() - started) / 1000)
      return reply
    } catch (error) {
      throw this.failed(error, client, timeoutMs)
    }
  }

  /** Runs a script by SHA1, sending its source only when Redis does not have it yet. */
  async eval(script: RedisScript, keys: readonly string[], args: readonly string[], timeoutMs?: number): Promise<unknown> {
    const rest = [String(keys.length), ...keys, ...args]
    try {
      return await this.send('EVALSHA', [script.sha, ...rest], timeoutMs)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return this.send('EVAL', [script.source, ...rest], timeoutMs)
    }
  }

  /** Stops for good: the clients close and no reconnect follows. */
  close(): void {
    this.closed = true
    clearInterval(this.checker)
    this.dropClients()
    this.state = 'down'
    this.options.metrics.redisConnected.set(0)
  }

  /**
   * Classifies a failed command. A lost connection takes the link down; a slow answer alone does
   * not (a big broadcast can be slow on a healthy Redis), but makes the link check itself now.
   */
  private failed(error: unknown, client: RedisClient, timeoutMs: number): Error {
    const metrics = this.options.metrics
    if (error instanceof CommandTimeout) {
      metrics.redisCommandErrors.inc({ kind: 'timeout' })
      void this.check()
      return new RedisTimeout(`Redis did not answer within ${timeoutMs} ms`)
    }
    if ((error as { code?: string }).code === SERVER_ERROR_CODE) {
      // NOSCRIPT is how a script gets loaded (see `eval`), not a failure.
      if (!(error as Error).message.startsWith('NOSCRIPT')) metrics.redisCommandErrors.inc({ kind: 'server' })
      return error as Error
    }
    metrics.redisCommandErrors.inc({ kind: 'connection' })
    this.goDown(client, (error as Error).message)
    return new RedisUnavailable(`Redis connection failed: ${(error as Error).message}`)
  }

  /**
   * Is an up link still up (both connections answer a PING in time: a hung Redis or a silently
   * dropped socket keeps `.connected` true)? Is a down link back? One check at a time.
   */
  private check(): Promise<void> {
    this.checking ??= this.checkNow().finally(() => (this.checking = null))
    return this.checking
  }

  private async checkNow(): Promise<void> {
    if (this.closed) return
    if (this.state !== 'up') return this.reconnect()
    const commands = this.commands!
    const subscriber = this.subscriber!
    if (!commands.connected || !subscriber.connected) return this.goDown(commands, 'connection closed')
    try {
      await withDeadline(Promise.all([commands.ping(), subscriber.ping()]), this.commandTimeoutMs)
    } catch (error) {
      this.goDown(commands, error instanceof CommandTimeout ? `no answer to PING within ${this.commandTimeoutMs} ms` : (error as Error).message)
    }
  }

  private goDown(client: RedisClient, reason: string): void {
    // A late failure of a client already replaced says nothing about the current one.
    if (this.closed || this.state !== 'up' || client !== this.commands) return
    this.markDown(reason)
  }

  /** Down (a lost link, or a first connect that failed): clients dropped, the outage logged once. */
  private markDown(reason: string): void {
    this.state = 'down'
    this.options.metrics.redisConnected.set(0)
    this.dropClients()
    if (this.outageLogged) return
    this.outageLogged = true
    this.options.logger.error({ err: reason }, 'Redis unreachable: publishing and answering refused, rate limits local, until it returns')
  }

  /** One attempt at a time: two fresh clients, the subscriptions, then up. */
  private reconnect(): Promise<void> {
    this.attempt ??= this.connectFresh().finally(() => (this.attempt = null))
    return this.attempt
  }

  private async connectFresh(): Promise<void> {
    this.dropClients()
    const options = { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: this.commandTimeoutMs * 2 }
    const commands = new RedisClient(this.options.url, options)
    const subscriber = new RedisClient(this.options.url, options)
    this.commands = commands
    this.subscriber = subscriber
    try {
      await withDeadline(
        (async () => {
          await Promise.all([commands.connect(), subscriber.connect()])
          for (const [channel, listener] of this.subscriptions) await subscriber.subscribe(channel, listener)
        })(),
        this.commandTimeoutMs * 3,
      )
    } catch (error) {
      // Not ours any more only after close(), which has already taken the link down.
      if (this.commands === commands) this.markDown((error as Error).message)
      return
    }
    if (this.closed || this.commands !== commands) {
      commands.close()
      subscriber.close()
      return
    }
    const wasOutage = this.outageLogged
    this.state = 'up'
    this.outageLogged = false
    this.options.metrics.redisConnected.set(1)
    if (wasOutage) this.options.logger.warn('Redis reachable again: closing event streams so their clients replay what they missed')
    else this.options.logger.info('Redis connected: cluster mode')
    for (const listener of this.reconnectListeners) listener()
  }

  private dropClients(): void {
    for (const client of [this.commands, this.subscriber]) {
      if (client === null) continue
      try {
        client.close()
      } catch {
        // Already closed.
      }
    }
    this.commands = null
    this.subscriber = null
  }
}

class CommandTimeout extends Error {}

/** Resolves or rejects as `promise` does, or rejects with `CommandTimeout` after `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: Timer | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CommandTimeout()), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
