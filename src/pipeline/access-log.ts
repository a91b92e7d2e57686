/**
 * The access log (README, "Logging"): one JSON line per request, in pino's format and through
 * pino's destination and level, but written by a serializer made for its fixed schema. pino's
 * generic serializer runs `JSON.stringify` on every key and string value, which profiles put at
 * about a seventh of a proxied request; here only a path that needs escaping is escaped.
 *
 * Request headers are never among the fields, so `Authorization` and `Cookie` values cannot
 * reach the log.
 */
import { type Logger, destinationOf, isoTimestamp } from '../ops/log'
import type { RequestContext } from '../request/context'

/** pino's numeric levels. */
const LEVELS = { debug: 20, info: 30, warn: 40 } as const
export type AccessLevel = keyof typeof LEVELS

/** What a JSON string must escape (RFC 8259 §7): quote, backslash, control characters; lone surrogates too. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/** `"value"`, escaped only when needed. */
function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`
}

export class AccessLog {
  private readonly write: (line: string) => void
  private readonly serviceFieldsCache = new Map<string, Map<string, string>>()

  /** The logger's bindings as they follow the time in pino's lines (`,"worker":2`), or nothing. */
  private readonly bindings: string

  constructor(private readonly logger: Logger) {
    const destination = destinationOf(logger)
    this.write = (line) => destination.write(line)
    const bound = JSON.stringify(logger.bindings())
    this.bindings = bound === '{}' ? '' : `,${bound.slice(1, -1)}`
  }

  /**
   * The `service` (and `target_url`) fields of a line, serialized once per service and target.
   * @example accessLog.serviceFields('runner', 'http://localhost:8082') // ',"service":"runner","target_url":"http://localhost:8082"'
   */
  serviceFields(service: string, targetUrl = ''): string {
    // Nested by strings the caller holds, not keyed by one built per call: their hashes are cached.
    let byTarget = this.serviceFieldsCache.get(service)
    if (byTarget === undefined) this.serviceFieldsCache.set(service, (byTarget = new Map()))
    let fields = byTarget.get(targetUrl)
    if (fields === undefined) {
      fields = `,"service":${JSON.stringify(service)}${targetUrl === '' ? '' : `,"target_url":${JSON.stringify(targetUrl)}`}`
      byTarget.set(targetUrl, fields)
    }
    return fields
  }

  /** Whether a line at `level` would be written at all. */
  enabled(level: AccessLevel): boolean {
    return LEVELS[level] >= this.logger.levelVal
  }

  /**
   * Writes the line of one request; the field order is pino's: level, time, bindings, fields, msg.
   * @param serviceFields from `serviceFields()`.
   * @param attempts of a proxied request (retries included; 0 when no instance could be used); undefined for other requests.
   * @example {"level":"info","time":"…","service":"runner","target_url":"…","method":"GET","path":"/jobs","status":200,"duration_ms":3,"request_id":"…","client_ip":"…","msg":"Proxied request"}
   */
  line(ctx: RequestContext, level: AccessLevel, msg: string, serviceFields: string, path: string, status: number, durationMs: number, attempts: number | undefined): void {
    const failure = ctx.upstreamError
    this.write(
      `{"level":"${level}"${isoTimestamp()}${this.bindings}${serviceFields},"method":${jsonString(ctx.method)},"path":${jsonString(path)},"status":${status},"duration_ms":${durationMs},"request_id":"${ctx.requestId}","client_ip":"${ctx.clientIp}"${
        attempts === undefined ? '' : `,"attempts":${attempts}`
      }${failure === undefined ? '' : `,"upstream_error":"${failure}"`},"msg":"${msg}"}\n`,
    )
  }
}
