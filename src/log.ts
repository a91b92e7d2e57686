/**
 * The pino logger: one JSON object per line on stdout, `level` as a word, ISO timestamps.
 * No transports: `bun build --compile` cannot ship the worker threads they spawn.
 */
import pino from 'pino'
import type { LogLevel } from './config'

export type Logger = pino.Logger

/** Where log lines go: stdout by default; tests pass a collector. */
export type LogDestination = pino.DestinationStream

/**
 * @example createLogger('info').info({ port: 8081 }, 'Listening')
 */
export function createLogger(level: LogLevel, destination?: LogDestination): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  )
}
