/**
 * The pino logger: one JSON object per line on stdout, `level` as a word, ISO timestamps.
 * No transports: `bun build --compile` cannot ship the worker threads they spawn.
 */
import './diagnostics-compat'
import { writeSync } from 'node:fs'
import pino from 'pino'
import type { LogLevel } from '../config/settings'

export type Logger = pino.Logger

/** Where log lines go: stdout by default; tests pass a collector. */
export type LogDestination = pino.DestinationStream

/** Lines are written at least this often... */
export const LOG_FLUSH_INTERVAL_MS = 100
/** ...or as soon as this many characters wait. */
export const LOG_FLUSH_CHARS = 64 * 1024

/**
 * Gathers log lines and writes them in batches, like nginx's `access_log … buffer=64k flush=…`:
 * one write per batch instead of one per request. Batches go out every
 * `LOG_FLUSH_INTERVAL_MS`, when `LOG_FLUSH_CHARS` wait, and on `flush()` (shutdown, exit).
 */
export class BatchedLineWriter implements LogDestination {
  /** Concatenated as it comes: the engine keeps it as a rope until the write flattens it once. */
  private pending = ''
  private readonly timer: Timer

  constructor(
    private readonly output: (text: string) => void = (text) => writeSync(1, text),
    intervalMs = LOG_FLUSH_INTERVAL_MS,
    private readonly maxChars = LOG_FLUSH_CHARS,
  ) {
    this.timer = setInterval(() => this.flush(), intervalMs)
    this.timer.unref()
  }

  write(line: string): void {
    this.pending += line
    if (this.pending.length >= this.maxChars) this.flush()
  }

  /** Writes what waits now; pino's `logger.flush(cb)` lands here. */
  flush(callback?: (error?: Error) => void): void {
    if (this.pending.length > 0) {
      const text = this.pending
      this.pending = ''
      this.output(text)
    }
    callback?.()
  }

  close(): void {
    clearInterval(this.timer)
    this.flush()
  }
}

let stampedAt = 0
let stamp = ''

/**
 * pino's `isoTime`, made once per millisecond: a busy gateway writes several lines in each.
 * @example isoTimestamp() // ',"time":"2026-11-26T05:16:02.908Z"'
 */
export function isoTimestamp(): string {
  const now = Date.now()
  if (now !== stampedAt) {
    stampedAt = now
    stamp = `,"time":"${new Date(now).toISOString()}"`
  }
  return stamp
}

/**
 * Where `logger` writes its lines, for the access log, which serializes its own (see
 * src/pipeline/access-log.ts) but must share pino's destination and order.
 */
export function destinationOf(logger: Logger): LogDestination {
  return (logger as unknown as Record<symbol, LogDestination>)[pino.symbols.streamSym]!
}

/**
 * @param worker the worker's id, on every line (README, "Workers"); absent for a single process.
 * @example createLogger('info').info({ port: 8081 }, 'Listening')
 */
export function createLogger(level: LogLevel, destination?: LogDestination, worker?: number): Logger {
  return pino(
    {
      level,
      base: worker === undefined ? undefined : { worker },
      messageKey: 'msg',
      timestamp: isoTimestamp,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? new BatchedLineWriter(),
  )
}
