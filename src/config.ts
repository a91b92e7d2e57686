/**
 * Environment → typed, validated `Config`. This is the only module that reads
 * `process.env`; everything else receives a `Config`.
 */
import { TrustedProxies } from './http/client-ip'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** A backend the gateway forwards `/api/v1/<name>/...` to. */
export interface ServiceTarget {
  name: string
  /** As configured, for logs: `http://h:9000/base`. */
  url: string
  /** Scheme, host and port: `http://h:9000`. */
  origin: string
  /** Path prefix without a trailing slash: `/base`, or `` for none. */
  basePath: string
}

export interface EventsConfig {
  heartbeatMs: number
  buffer: number
  history: number
  historyTtlMs: number
  questionTtlMs: number
  /** Empty: only loopback peers may publish. */
  publishToken: string
  hitlResponsePath: string
}

export interface Config {
  port: number
  host: string
  services: ReadonlyMap<string, ServiceTarget>
  /** Requests per minute per client IP; 0 disables rate limiting. */
  rateLimit: number
  rateLimitBurst: number
  trustProxy: TrustedProxies
  logLevel: LogLevel
  upstreamTimeoutMs: number
  maxBodyBytes: number
  events: EventsConfig
  /** `'*'` for any origin, else the exact origins allowed. */
  corsOrigins: '*' | readonly string[]
  redisKeyPrefix: string
}

/** A setting the operator got wrong; `main` prints `message` as one line and exits 1. */
export class ConfigError extends Error {}

interface Setting {
  name: string
  default: string
  meaning: string
}

/** Every setting of SPEC §1, in the order `--help` prints them. */
export const SETTINGS: readonly Setting[] = [
  { name: 'PORT', default: '8081', meaning: 'listen port (1-65535)' },
  { name: 'HOST', default: '0.0.0.0', meaning: 'listen address' },
  { name: '<NAME>_URL', default: '', meaning: 'registers backend service <name> (lower-cased), e.g. MY_SERVICE_URL=http://10.0.0.5:9000' },
  { name: 'RATE_LIMIT', default: '1000', meaning: 'requests per minute per client IP; 0 disables' },
  { name: 'RATE_LIMIT_BURST', default: '= RATE_LIMIT', meaning: 'token-bucket capacity' },
  { name: 'TRUST_PROXY', default: '', meaning: 'comma list of IPs/CIDRs whose X-Forwarded-For is believed' },
  { name: 'LOG_LEVEL', default: 'info', meaning: LOG_LEVELS.join(' ') },
  { name: 'UPSTREAM_TIMEOUT_MS', default: '30000', meaning: "time allowed until the backend's response headers" },
  { name: 'MAX_BODY_BYTES', default: '10485760', meaning: 'largest request body accepted' },
  { name: 'SSE_HEARTBEAT_MS', default: '30000', meaning: 'heartbeat interval on event streams' },
  { name: 'SSE_BUFFER', default: '100', meaning: 'events queued per connection before it counts as too slow' },
  { name: 'SSE_HISTORY', default: '100', meaning: 'events retained per client for Last-Event-ID replay' },
  { name: 'SSE_HISTORY_TTL_MS', default: '300000', meaning: 'how long a retained event stays replayable' },
  { name: 'QUESTION_TTL_MS', default: '86400000', meaning: 'how long an unanswered question stays pending' },
  { name: 'PUBLISH_TOKEN', default: '', meaning: 'bearer token required to publish; empty: only loopback peers may publish' },
  { name: 'HITL_RESPONSE_PATH', default: '/responses', meaning: 'path on the hitl service that receives answers; {question_id} is substituted' },
  { name: 'CORS_ORIGINS', default: '*', meaning: 'allowed browser origins, comma list' },
  { name: 'REDIS_URL', default: '', meaning: 'cluster mode (not supported yet: the gateway refuses to start)' },
  { name: 'REDIS_KEY_PREFIX', default: 'gw:', meaning: 'prefix of every Redis key and channel' },
  { name: 'AUTH_JWT_SECRET / AUTH_JWKS_URL', default: '', meaning: 'authentication (not supported yet: the gateway refuses to start)' },
  { name: 'TLS_CERT_FILE / TLS_KEY_FILE', default: '', meaning: 'HTTPS (not supported yet: the gateway refuses to start)' },
]

/** Services that exist without any `<NAME>_URL`, each overridable by its variable. */
export const BUILT_IN_SERVICES: Readonly<Record<string, string>> = {
  orchestrator: 'http://localhost:8080',
  runner: 'http://localhost:8082',
  hitl: 'http://localhost:8083',
  parser: 'http://localhost:8084',
  fanout: 'http://localhost:8085',
}

/** `/api/v1/events/...` belongs to the gateway itself. */
export const RESERVED_SERVICE_NAMES: ReadonlySet<string> = new Set(['events'])

/** `*_URL` variables that are the gateway's own settings, never services. */
const OWN_URL_SETTINGS: ReadonlySet<string> = new Set(['REDIS_URL', 'AUTH_JWKS_URL'])

/** Settings whose features have not been built: starting without them would silently ignore the operator. */
const NOT_YET_SUPPORTED = /^(REDIS_URL|AUTH_[A-Z0-9_]+|TLS_CERT_FILE|TLS_KEY_FILE)$/

type Env = Readonly<Record<string, string | undefined>>

/**
 * Builds the gateway's configuration from environment variables.
 * @example loadConfig({ PORT: '9000', RUNNER_URL: 'http://10.0.0.7:8082' }).port // 9000
 * @throws ConfigError naming the variable, its value and what is allowed.
 */
export function loadConfig(env: Env): Config {
  for (const [name, value] of Object.entries(env)) {
    if (value && NOT_YET_SUPPORTED.test(name)) {
      throw new ConfigError(`${name} is set, but ${featureOf(name)} is not supported yet by this version; unset it to start`)
    }
  }
  const rateLimit = integer(env, 'RATE_LIMIT', 1000, 0)
  return {
    port: integer(env, 'PORT', 8081, 1, 65535),
    host: nonEmpty(env, 'HOST', '0.0.0.0'),
    services: discoverServices(env),
    rateLimit,
    rateLimitBurst: integer(env, 'RATE_LIMIT_BURST', Math.max(rateLimit, 1), 1),
    trustProxy: trustedProxies(env),
    logLevel: logLevel(env),
    upstreamTimeoutMs: integer(env, 'UPSTREAM_TIMEOUT_MS', 30_000, 1),
    maxBodyBytes: integer(env, 'MAX_BODY_BYTES', 10_485_760, 0),
    events: {
      heartbeatMs: integer(env, 'SSE_HEARTBEAT_MS', 30_000, 1),
      buffer: integer(env, 'SSE_BUFFER', 100, 1),
      history: integer(env, 'SSE_HISTORY', 100, 0),
      historyTtlMs: integer(env, 'SSE_HISTORY_TTL_MS', 300_000, 1),
      questionTtlMs: integer(env, 'QUESTION_TTL_MS', 86_400_000, 1),
      publishToken: env.PUBLISH_TOKEN ?? '',
      hitlResponsePath: hitlResponsePath(env),
    },
    corsOrigins: corsOrigins(env),
    redisKeyPrefix: env.REDIS_KEY_PREFIX ?? 'gw:',
  }
}

/** The text of `--help`. */
export function helpText(version: string): string {
  const width = Math.max(...SETTINGS.map((s) => s.name.length))
  const rows = SETTINGS.map((s) => `  ${s.name.padEnd(width)}  ${s.meaning}${s.default ? ` (default: ${s.default})` : ''}`)
  const builtIns = Object.entries(BUILT_IN_SERVICES).map(([name, url]) => `  ${name.padEnd(width)}  ${url}`)
  return [
    `api-gateway ${version}: reverse proxy, Server-Sent Events, human-in-the-loop and rate limiting`,
    '',
    'Usage: api-gateway [--help | --version]   (configured through environment variables)',
    '',
    'Settings:',
    ...rows,
    '',
    'Built-in services (each overridden by its <NAME>_URL):',
    ...builtIns,
    '',
  ].join('\n')
}

function featureOf(name: string): string {
  if (name === 'REDIS_URL') return 'cluster mode'
  if (name.startsWith('AUTH_')) return 'authentication'
  return 'TLS'
}

function invalid(name: string, value: string, allowed: string): ConfigError {
  return new ConfigError(`invalid ${name}=${JSON.stringify(value)}: expected ${allowed}`)
}

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const allowed = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`
  if (!/^\d+$/.test(raw.trim())) throw invalid(name, raw, allowed)
  const value = Number(raw.trim())
  if (value < min || value > max) throw invalid(name, raw, allowed)
  return value
}

function nonEmpty(env: Env, name: string, fallback: string): string {
  const raw = env[name]
  if (raw === undefined) return fallback
  if (raw.trim() === '') throw invalid(name, raw, 'a non-empty value')
  return raw.trim()
}

function logLevel(env: Env): LogLevel {
  const raw = env.LOG_LEVEL
  if (raw === undefined || raw === '') return 'info'
  const level = raw.trim().toLowerCase()
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw invalid('LOG_LEVEL', raw, `one of ${LOG_LEVELS.join(', ')}`)
  return level as LogLevel
}

function trustedProxies(env: Env): TrustedProxies {
  const raw = env.TRUST_PROXY ?? ''
  try {
    return TrustedProxies.parse(raw)
  } catch (error) {
    throw invalid('TRUST_PROXY', raw, `a comma list of IP addresses or CIDR ranges (${(error as Error).message})`)
  }
}

function corsOrigins(env: Env): '*' | string[] {
  const raw = env.CORS_ORIGINS
  if (raw === undefined || raw.trim() === '*') return '*'
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean)
  if (origins.length === 0) throw invalid('CORS_ORIGINS', raw, "'*' or a comma list of origins like https://app.example.com")
  for (const origin of origins) {
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {}
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin.replace(/\/$/, '')) {
      throw invalid('CORS_ORIGINS', raw, `'*' or a comma list of origins like https://app.example.com (not ${JSON.stringify(origin)})`)
    }
  }
  return origins.map((o) => o.replace(/\/$/, ''))
}

function hitlResponsePath(env: Env): string {
  const raw = env.HITL_RESPONSE_PATH
  if (raw === undefined || raw === '') return '/responses'
  if (!raw.startsWith('/') || /[\s?#]/.test(raw)) throw invalid('HITL_RESPONSE_PATH', raw, 'a path starting with / (no query or spaces)')
  return raw
}

/**
 * Built-in services, overridden or extended by every `<NAME>_URL` whose value is an http(s) URL.
 * @example discoverServices({ MY_SERVICE_URL: 'http://h:9000/base' }).get('my_service')?.basePath // '/base'
 */
export function discoverServices(env: Env): Map<string, ServiceTarget> {
  const services = new Map<string, ServiceTarget>()
  for (const [name, url] of Object.entries(BUILT_IN_SERVICES)) services.set(name, serviceTarget(name, url, `${name.toUpperCase()}_URL`))
  for (const [variable, value] of Object.entries(env)) {
    const match = /^([A-Za-z0-9_]+)_URL$/.exec(variable)
    if (!match || OWN_URL_SETTINGS.has(variable) || value === undefined) continue
    const name = match[1]!.toLowerCase()
    const isBuiltIn = name in BUILT_IN_SERVICES
    // Other tools' *_URL variables (DATABASE_URL=postgres://...) are not services; a built-in's variable must be a URL.
    if (!/^https?:\/\//i.test(value) && !isBuiltIn) continue
    if (RESERVED_SERVICE_NAMES.has(name)) {
      throw new ConfigError(`invalid ${variable}=${JSON.stringify(value)}: the service name "${name}" is reserved by the gateway`)
    }
    services.set(name, serviceTarget(name, value, variable))
  }
  return services
}

function serviceTarget(name: string, value: string, variable: string): ServiceTarget {
  const allowed = 'an http:// or https:// URL with a host and an optional path prefix, no query or fragment'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid(variable, value, allowed)
  }
  if (!/^https?:$/.test(url.protocol) || !url.hostname || url.search || url.hash || url.username || url.password) {
    throw invalid(variable, value, allowed)
  }
  return { name, url: value, origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') }
}
