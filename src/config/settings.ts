/**
 * Environment → typed, validated `Config`. `loadConfig` reads only the environment it is given
 * (`main.ts` hands it `process.env`); everything else receives a `Config`. One table,
 * `SETTINGS`, drives parsing, defaults and `--help` (README, "Configuration").
 */
import { availableParallelism } from 'node:os'
import { TrustedProxies } from '../http/client-ip'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** One instance of a backend service. */
export interface InstanceTarget {
  /** As configured, for logs and metrics: `http://h:9000/base`. */
  url: string
  /** Scheme, host and port: `http://h:9000`. */
  origin: string
  /** Path prefix without a trailing slash: `/base`, or `` for none. */
  basePath: string
}

/** A backend the gateway forwards `/api/v1/<name>/...` to: one instance or several (README, "Instances"). */
export interface ServiceTarget {
  name: string
  /** The setting as configured (trimmed), for the startup log: `http://a:8080,http://b:8080`. */
  url: string
  instances: readonly InstanceTarget[]
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
  /** Open streams one client id may hold on this process. */
  maxStreamsPerClient: number
}

/** Authentication (README, "Authentication"): exactly one of `jwtSecret` and `jwksUrl` is set. */
export interface AuthConfig {
  /** HS256 key (the setting's UTF-8 bytes), or null with `jwksUrl`. */
  jwtSecret: string | null
  /** Where the RS256/ES256 public keys are, or null with `jwtSecret`. */
  jwksUrl: URL | null
  /** Required `iss`, or null for any. */
  issuer: string | null
  /** Required `aud`, or null for any. */
  audience: string | null
  /** The claim that must equal `:client_id` on the event routes. */
  clientClaim: string
  /** The cookie that may carry the token. */
  cookie: string
}

/** HTTPS on `PORT`: the PEM files, read and checked when the gateway starts. */
export interface TlsConfig {
  certFile: string
  keyFile: string
}

export interface Config {
  port: number
  host: string
  /** The built-in services and every `<NAME>_URL`: what the gateway serves without a policy file. */
  services: ReadonlyMap<string, ServiceTarget>
  /** The services a `<NAME>_URL` variable set (built-in defaults left out): their URL beats a policy file's. */
  servicesFromEnvironment: ReadonlySet<string>
  /** `GATEWAY_CONFIG` (or `--config`): the policy file, or null (README, "Policies"). */
  policyFile: string | null
  /** Requests per minute per client IP; 0 disables rate limiting. */
  rateLimit: number
  rateLimitBurst: number
  trustProxy: TrustedProxies
  logLevel: LogLevel
  upstreamTimeoutMs: number
  /** Extra attempts, each on another instance, for a request that reached no backend. */
  upstreamRetries: number
  /** Consecutive failures that eject an instance; 0 disables ejection. */
  circuitFailures: number
  circuitCooldownMs: number
  /** Backend response statuses that count as failures of the instance; empty: only what the gateway sees itself. */
  circuitStatuses: ReadonlySet<number>
  maxBodyBytes: number
  events: EventsConfig
  /** `'*'` for any origin, else the exact origins allowed. */
  corsOrigins: '*' | readonly string[]
  /** Cluster mode's Redis (`redis://` or `rediss://`), or null for the embedded single process. */
  redisUrl: string | null
  redisKeyPrefix: string
  /** Gateway processes on the port; above 1 the started process is their supervisor (README, "Workers"). */
  workers: number
  /** Null: authentication is off. */
  auth: AuthConfig | null
  /** Null: plain HTTP. */
  tls: TlsConfig | null
}

/** A setting the operator got wrong; `main` prints `message` as one line and exits 1. */
export class ConfigError extends Error {}

type Env = Readonly<Record<string, string | undefined>>

/** One environment variable: its name, its default as `--help` shows it, and how it is read. */
interface Setting<T> {
  variable: string
  /** Used when the variable is unset or empty; `--help` shows it. */
  default: string
  meaning: string
  /** Turns the effective value (set, or the default) into its typed form; throws `ConfigError`. */
  parse(value: string, variable: string): T
}

const setting = <T>(variable: string, fallback: string, meaning: string, parse: (value: string, variable: string) => T): Setting<T> => ({
  variable,
  default: fallback,
  meaning,
  parse,
})

function invalid(variable: string, value: string, allowed: string): ConfigError {
  return new ConfigError(`invalid ${variable}=${JSON.stringify(withoutCredentials(value))}: expected ${allowed}`)
}

/** Where a URL begins: at the start of a value, or after a comma or a space (a list of them). */
const URL_START = /(^|[\s,])([A-Za-z][A-Za-z0-9+.-]*:\/\/)/g

/**
 * A setting's value (or any text holding URLs) as it may be printed: the `user:password@` of
 * every URL in it masked. Each URL's credentials are masked up to its last `@`, since a
 * password may hold `/`, `@` or even `://`; a URL with no `@` but a port that is no number
 * (`redis://default:s3cret`, the host forgotten) has that "port" masked; text with an `@` but
 * no scheme (`admin:pw@host`) is masked up to the `@`. Over-masking a path with an `@` is the
 * price.
 * @example withoutCredentials('redis://:pa/ss@h:6379') // 'redis://***@h:6379'
 * @example withoutCredentials('http://a:8080,http://admin:s3cret@b:8080') // 'http://a:8080,http://***@b:8080'
 */
export function withoutCredentials(value: string): string {
  let masked = ''
  let cursor = 0
  let inUrl = false
  for (const start of value.matchAll(URL_START)) {
    const schemeAt = start.index + start[1]!.length
    masked += maskedPart(value.slice(cursor, schemeAt), inUrl) + start[2]
    cursor = schemeAt + start[2]!.length
    inUrl = true
  }
  return masked + maskedPart(value.slice(cursor), inUrl)
}

/** One URL after its `scheme://` (`inUrl`), or text before any URL. */
function maskedPart(part: string, inUrl: boolean): string {
  const at = part.lastIndexOf('@')
  if (at !== -1) return `***${part.slice(at)}`
  if (!inUrl) return part
  const authorityEnd = part.search(/[/?#\s,]|$/)
  const colon = part.lastIndexOf(':', authorityEnd)
  // A bracketed IPv6 host or a numeric port is no secret.
  if (colon === -1 || part.startsWith('[') || /^\d*$/.test(part.slice(colon + 1, authorityEnd))) return part
  return `${part.slice(0, colon + 1)}***${part.slice(authorityEnd)}`
}

/** A whole number in `[min, max]`. */
const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string, variable: string): number => {
    const allowed = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`
    if (!/^\d+$/.test(value.trim())) throw invalid(variable, value, allowed)
    const parsed = Number(value.trim())
    if (parsed < min || parsed > max) throw invalid(variable, value, allowed)
    return parsed
  }

/** Like `integer`, or `undefined` when the setting is empty (its default is derived from another). */
const optionalInteger = (min: number) => (value: string, variable: string) => (value === '' ? undefined : integer(min)(value, variable))

const text = (value: string) => value

const nonEmpty = (value: string, variable: string): string => {
  if (value.trim() === '') throw invalid(variable, value, 'a non-empty value')
  return value.trim()
}

const logLevel = (value: string, variable: string): LogLevel => {
  const level = value.trim().toLowerCase()
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw invalid(variable, value, `one of ${LOG_LEVELS.join(', ')}`)
  return level as LogLevel
}

const trustedProxies = (value: string, variable: string): TrustedProxies => {
  try {
    return TrustedProxies.parse(value)
  } catch (error) {
    throw invalid(variable, value, `a comma list of IP addresses or CIDR ranges (${(error as Error).message})`)
  }
}

const corsOrigins = (value: string, variable: string): '*' | string[] => {
  if (value.trim() === '*') return '*'
  const allowed = "'*' or a comma list of origins like https://app.example.com"
  const origins = value.split(',').map((o) => o.trim()).filter(Boolean)
  if (origins.length === 0) throw invalid(variable, value, allowed)
  for (const origin of origins) {
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {}
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin.replace(/\/$/, '')) {
      throw invalid(variable, value, `${allowed} (not ${JSON.stringify(origin)})`)
    }
  }
  return origins.map((o) => o.replace(/\/$/, ''))
}

const responsePath = (value: string, variable: string): string => {
  if (!value.startsWith('/') || /[\s?#]/.test(value)) throw invalid(variable, value, 'a path starting with / (no query or spaces)')
  return value
}

/** `redis://[user:password@]host[:port][/db]` or `rediss://…`; empty: no cluster mode. */
const redisUrl = (value: string, variable: string): string | null => {
  if (value.trim() === '') return null
  const allowed = 'redis://[user:password@]host[:port][/db] or rediss://...'
  let parsed: URL
  try {
    parsed = new URL(value.trim())
  } catch {
    throw invalid(variable, value, allowed)
  }
  if (!/^rediss?:$/.test(parsed.protocol) || parsed.hostname === '' || !/^(\/\d*)?$/.test(parsed.pathname) || parsed.search || parsed.hash) {
    throw invalid(variable, value, allowed)
  }
  return value.trim()
}

/** An http(s) URL, or null when empty. */
const optionalHttpUrl = (value: string, variable: string): URL | null => {
  if (value.trim() === '') return null
  let parsed: URL | undefined
  try {
    parsed = new URL(value.trim())
  } catch {}
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.hostname === '') throw invalid(variable, value, 'an http:// or https:// URL')
  return parsed
}

/** Empty stays null; anything else is kept as written (no trimming: a secret's bytes are its value). */
const optionalText = (value: string): string | null => (value === '' ? null : value)

/** A cookie or claim name: an RFC 6265 token (§4.1.1), which also suits a JSON claim name. */
const tokenName = (value: string, variable: string): string => {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) throw invalid(variable, value, 'a name of letters, digits and !#$%&\'*+-.^_`|~')
  return value
}

/** HTTP statuses (RFC 9110 §15: 100–599), a comma list; empty: none. */
const statusList = (value: string, variable: string): ReadonlySet<number> => {
  const entries = value.split(',').map((entry) => entry.trim()).filter(Boolean)
  if (entries.some((entry) => !/^[1-5]\d\d$/.test(entry))) throw invalid(variable, value, 'a comma list of HTTP statuses from 100 to 599, like 502,503,504')
  return new Set(entries.map(Number))
}

/** A whole number ≥ 1, or `auto`: one per CPU the process may use. */
const workerCount = (value: string, variable: string): number => {
  if (value.trim().toLowerCase() === 'auto') return availableParallelism()
  return integer(1, 1024)(value, variable)
}

/** Every setting, in the order `--help` prints them (README, "Configuration"). */
export const SETTINGS = {
  port: setting('PORT', '8081', 'listen port (1-65535)', integer(1, 65535)),
  host: setting('HOST', '0.0.0.0', 'listen address', nonEmpty),
  rateLimit: setting('RATE_LIMIT', '1000', 'requests per minute per client IP; 0 disables', integer(0)),
  rateLimitBurst: setting('RATE_LIMIT_BURST', '', 'token-bucket capacity (default: = RATE_LIMIT)', optionalInteger(1)),
  trustProxy: setting('TRUST_PROXY', '', 'comma list of IPs/CIDRs whose X-Forwarded-For is believed', trustedProxies),
  logLevel: setting('LOG_LEVEL', 'info', LOG_LEVELS.join(' '), logLevel),
  upstreamTimeoutMs: setting('UPSTREAM_TIMEOUT_MS', '30000', "time allowed until the backend's response headers", integer(1)),
  maxBodyBytes: setting('MAX_BODY_BYTES', '10485760', 'largest request body accepted', integer(0)),
  heartbeatMs: setting('SSE_HEARTBEAT_MS', '30000', 'heartbeat interval on event streams', integer(1)),
  buffer: setting('SSE_BUFFER', '100', 'events queued per connection before it counts as too slow', integer(1)),
  history: setting('SSE_HISTORY', '100', 'events retained per client for Last-Event-ID replay', integer(0)),
  historyTtlMs: setting('SSE_HISTORY_TTL_MS', '300000', 'how long a retained event stays replayable', integer(1)),
  questionTtlMs: setting('QUESTION_TTL_MS', '86400000', 'how long an unanswered question stays pending', integer(1)),
  publishToken: setting('PUBLISH_TOKEN', '', 'bearer token required to publish; empty: only loopback peers may publish', text),
  hitlResponsePath: setting('HITL_RESPONSE_PATH', '/responses', 'path on the hitl service that receives answers; {question_id} is substituted', responsePath),
  corsOrigins: setting('CORS_ORIGINS', '*', 'allowed browser origins, comma list', corsOrigins),
  redisUrl: setting('REDIS_URL', '', 'cluster mode: redis://[user:password@]host:port[/db] or rediss://', redisUrl),
  redisKeyPrefix: setting('REDIS_KEY_PREFIX', 'gw:', 'prefix of every Redis key and channel', text),
  workers: setting('WORKERS', '1', "gateway processes sharing the port (Linux, needs REDIS_URL above 1); 'auto' = one per CPU", workerCount),
  // The secret is never echoed: no parse of it can fail, and errors about it name only the variable.
  authJwtSecret: setting('AUTH_JWT_SECRET', '', 'authentication with HS256 tokens: the shared secret (use 32 bytes or more)', optionalText),
  authJwksUrl: setting('AUTH_JWKS_URL', '', 'authentication with RS256/ES256 tokens: URL of the JSON Web Key Set', optionalHttpUrl),
  authIssuer: setting('AUTH_ISSUER', '', 'required iss of every token', optionalText),
  authAudience: setting('AUTH_AUDIENCE', '', 'required aud of every token', optionalText),
  authClientClaim: setting('AUTH_CLIENT_CLAIM', 'sub', 'the token claim that must equal :client_id on event routes', tokenName),
  authCookie: setting('AUTH_COOKIE', 'access_token', 'cookie that may carry the token', tokenName),
  tlsCertFile: setting('TLS_CERT_FILE', '', 'HTTPS: PEM certificate (chain) file; needs TLS_KEY_FILE', optionalText),
  tlsKeyFile: setting('TLS_KEY_FILE', '', 'HTTPS: PEM private key file; needs TLS_CERT_FILE', optionalText),
  upstreamRetries: setting('UPSTREAM_RETRIES', '1', 'extra attempts, on another instance, for a request that reached no backend', integer(0, 10)),
  circuitFailures: setting('CIRCUIT_FAILURES', '5', 'consecutive failures that eject an instance; 0 disables ejection', integer(0)),
  circuitCooldownMs: setting('CIRCUIT_COOLDOWN_MS', '10000', 'how long an ejected instance rests before one probe request', integer(1)),
  circuitStatuses: setting('CIRCUIT_STATUSES', '', "backend response statuses that count as instance failures, e.g. 502,503,504; empty: only failures the gateway sees itself", statusList),
  maxStreamsPerClient: setting('SSE_MAX_STREAMS_PER_CLIENT', '32', 'open event streams per client_id on this process; one more gets 429', integer(1)),
  policyFile: setting('GATEWAY_CONFIG', '', 'YAML file of services and their policies, reloaded on SIGHUP (or --config <path>)', optionalText),
} as const

type SettingValues = { [K in keyof typeof SETTINGS]: ReturnType<(typeof SETTINGS)[K]['parse']> }

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
const OWN_URL_SETTINGS: ReadonlySet<string> = new Set(
  Object.values(SETTINGS)
    .map((s) => s.variable)
    .filter((variable) => variable.endsWith('_URL')),
)

/**
 * Builds the gateway's configuration from environment variables.
 * @example loadConfig({ PORT: '9000', RUNNER_URL: 'http://10.0.0.7:8082' }).port // 9000
 * @throws ConfigError naming the variable, its value and what is allowed.
 */
export function loadConfig(env: Env): Config {
  const values = readSettings(env)
  const { services, fromEnvironment } = servicesOf(env)
  return {
    port: values.port,
    host: values.host,
    services,
    servicesFromEnvironment: fromEnvironment,
    policyFile: values.policyFile,
    rateLimit: values.rateLimit,
    rateLimitBurst: values.rateLimitBurst ?? Math.max(values.rateLimit, 1),
    trustProxy: values.trustProxy,
    logLevel: values.logLevel,
    upstreamTimeoutMs: values.upstreamTimeoutMs,
    upstreamRetries: values.upstreamRetries,
    circuitFailures: values.circuitFailures,
    circuitCooldownMs: values.circuitCooldownMs,
    circuitStatuses: values.circuitStatuses,
    maxBodyBytes: values.maxBodyBytes,
    events: {
      heartbeatMs: values.heartbeatMs,
      buffer: values.buffer,
      history: values.history,
      historyTtlMs: values.historyTtlMs,
      questionTtlMs: values.questionTtlMs,
      publishToken: values.publishToken,
      hitlResponsePath: values.hitlResponsePath,
      maxStreamsPerClient: values.maxStreamsPerClient,
    },
    corsOrigins: values.corsOrigins,
    redisUrl: values.redisUrl,
    redisKeyPrefix: values.redisKeyPrefix,
    workers: workersConfig(values),
    auth: authConfig(values),
    tls: tlsConfig(values),
  }
}

/** Workers are cluster members, and share a port only where the kernel balances it. */
function workersConfig(values: SettingValues, platform = process.platform): number {
  const workers = values.workers
  if (workers === 1) return 1
  if (values.redisUrl === null) {
    throw new ConfigError(`WORKERS=${workers} needs REDIS_URL: workers are cluster members and share events, questions and rate limits through Redis`)
  }
  if (platform !== 'linux') throw new ConfigError(`WORKERS=${workers} needs Linux (SO_REUSEPORT balances one port across processes only there); this is ${platform}`)
  return workers
}

/** Authentication is on with a secret or a JWKS URL, never both. */
function authConfig(values: SettingValues): AuthConfig | null {
  const { authJwtSecret: jwtSecret, authJwksUrl: jwksUrl } = values
  if (jwtSecret !== null && jwksUrl !== null) {
    throw new ConfigError('AUTH_JWT_SECRET and AUTH_JWKS_URL are both set: choose one (HS256 with a secret, or RS256/ES256 keys from a JWKS)')
  }
  if (jwtSecret === null && jwksUrl === null) return null
  return { jwtSecret, jwksUrl, issuer: values.authIssuer, audience: values.authAudience, clientClaim: values.authClientClaim, cookie: values.authCookie }
}

/** HTTPS needs both files; the files themselves are read at start (`src/http/tls.ts`). */
function tlsConfig(values: SettingValues): TlsConfig | null {
  const { tlsCertFile: certFile, tlsKeyFile: keyFile } = values
  if (certFile === null && keyFile === null) return null
  if (certFile === null) throw new ConfigError(`TLS_KEY_FILE=${JSON.stringify(keyFile)} is set without TLS_CERT_FILE: HTTPS needs both`)
  if (keyFile === null) throw new ConfigError(`TLS_CERT_FILE=${JSON.stringify(certFile)} is set without TLS_KEY_FILE: HTTPS needs both`)
  return { certFile, keyFile }
}

/** Every entry of `SETTINGS`, read from `env` (an unset or empty variable takes the default). */
function readSettings(env: Env): SettingValues {
  const values: Record<string, unknown> = {}
  for (const [key, entry] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const raw = env[entry.variable]
    values[key] = entry.parse(raw === undefined || raw === '' ? entry.default : raw, entry.variable)
  }
  return values as SettingValues
}

/** The text of `--help`, from `SETTINGS` and `BUILT_IN_SERVICES`. */
export function helpText(version: string): string {
  const rows: [string, string][] = Object.values(SETTINGS).map((s: Setting<unknown>) => [s.variable, `${s.meaning}${s.default ? ` (default: ${s.default})` : ''}`])
  rows.splice(2, 0, ['<NAME>_URL', 'registers backend service <name> (lower-cased), e.g. MY_SERVICE_URL=http://10.0.0.5:9000'])
  const width = Math.max(...rows.map(([name]) => name.length))
  return [
    `api-gateway ${version}: reverse proxy, Server-Sent Events, human-in-the-loop and rate limiting`,
    '',
    'Usage: api-gateway [demo | --check | --healthcheck | --help | --version]   (configured through environment variables)',
    '',
    'Settings:',
    ...rows.map(([name, meaning]) => `  ${name.padEnd(width)}  ${meaning}`),
    '',
    'Built-in services (each overridden by its <NAME>_URL):',
    ...Object.entries(BUILT_IN_SERVICES).map(([name, url]) => `  ${name.padEnd(width)}  ${url}`),
    '',
  ].join('\n')
}

/**
 * Built-in services, overridden or extended by every `<NAME>_URL` whose value is an http(s) URL.
 * @example discoverServices({ MY_SERVICE_URL: 'http://h:9000/base' }).get('my_service')?.instances[0]?.basePath // '/base'
 */
export function discoverServices(env: Env): Map<string, ServiceTarget> {
  return servicesOf(env).services
}

/** The services, and which of them a variable named (the others are built-in defaults). */
function servicesOf(env: Env): { services: Map<string, ServiceTarget>; fromEnvironment: Set<string> } {
  const services = new Map<string, ServiceTarget>()
  const fromEnvironment = new Set<string>()
  for (const [name, url] of Object.entries(BUILT_IN_SERVICES)) services.set(name, serviceTarget(name, url, `${name.toUpperCase()}_URL`))
  for (const [variable, value] of Object.entries(env)) {
    const match = /^([A-Za-z0-9_]+)_URL$/.exec(variable)
    if (!match || OWN_URL_SETTINGS.has(variable) || value === undefined) continue
    const name = match[1]!.toLowerCase()
    const isBuiltIn = name in BUILT_IN_SERVICES
    // Other tools' *_URL variables (DATABASE_URL=postgres://...) are not services; a built-in's variable must be a URL.
    if (!/^https?:\/\//i.test(value.trim()) && !isBuiltIn) continue
    if (RESERVED_SERVICE_NAMES.has(name)) {
      throw new ConfigError(`invalid ${variable}=${JSON.stringify(withoutCredentials(value))}: the service name "${name}" is reserved by the gateway`)
    }
    services.set(name, serviceTarget(name, value, variable))
    fromEnvironment.add(name)
  }
  return { services, fromEnvironment }
}

/** One URL, or a comma list of instances: `http://a:8080,http://b:8080/v2`. */
function serviceTarget(name: string, value: string, variable: string): ServiceTarget {
  const entries = value.split(',').map((entry) => entry.trim())
  const instances = instanceTargets(entries)
  if (typeof instances === 'string') throw invalid(variable, value, `${INSTANCE_URL_RULE} (or a comma list of them); ${instances}`)
  return { name, url: entries.join(','), instances }
}

/** What an instance URL must be (README, "Services"). */
export const INSTANCE_URL_RULE = 'an http:// or https:// URL with a host and an optional path prefix, no query, fragment or credentials'

/**
 * The instances of a service, one per URL, or why they cannot be (a URL that is not one, or one listed twice).
 * @example instanceTargets(['http://a:8080', 'http://b:8080/v2']) // two targets
 */
export function instanceTargets(entries: readonly string[]): InstanceTarget[] | string {
  const instances: InstanceTarget[] = []
  for (const entry of entries) {
    const instance = instanceTarget(entry)
    if (instance === undefined) return `${JSON.stringify(withoutCredentials(entry))} is not one`
    if (instances.some((other) => other.origin + other.basePath === instance.origin + instance.basePath)) return `${JSON.stringify(entry)} is listed twice`
    instances.push(instance)
  }
  return instances
}

function instanceTarget(entry: string): InstanceTarget | undefined {
  let url: URL
  try {
    url = new URL(entry)
  } catch {
    return undefined
  }
  if (!/^https?:$/.test(url.protocol) || !url.hostname || url.search || url.hash || url.username || url.password) return undefined
  return { url: entry, origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') }
}
