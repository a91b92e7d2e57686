/**
 * `api-gateway --check` (README, "Operations"): the settings as the gateway would run with
 * them, and whether what they point at can be reached, without listening. Operators run it
 * before a restart; systemd runs it as `ExecStartPre`.
 */
import { RedisClient } from 'bun'
import net from 'node:net'
import { type PolicySet, describeService } from '../config/policies'
import { loadPolicies } from '../config/policy-file'
import { type Config, ConfigError, withoutCredentials } from '../config/settings'
import { loadTls } from '../config/tls'

/** How long each probe may take. */
const PROBE_TIMEOUT_MS = 3_000

export interface CheckResult {
  /** What is checked: `service runner http://10.0.0.5:8082`, `REDIS_URL`, ... */
  what: string
  ok: boolean
  detail: string
}

/**
 * Every check, run concurrently.
 * @example const results = await checkSettings(loadConfig(process.env))
 */
export async function checkSettings(config: Config): Promise<CheckResult[]> {
  const checks: Promise<CheckResult>[] = []
  const { policies } = checkPolicies(config)
  for (const service of (policies?.services ?? config.services).values()) {
    for (const instance of service.instances) checks.push(reachable(`service ${service.name} ${instance.url}`, new URL(instance.url)))
  }
  if (config.redisUrl !== null) checks.push(redisAnswers(config.redisUrl))
  if (config.tls !== null) checks.push(tlsLoads(config))
  if (config.auth?.jwksUrl) checks.push(keySetLoads(config.auth.jwksUrl))
  return Promise.all(checks)
}

/**
 * The `--check` report: the effective settings, one line per check, and the verdict.
 * @returns the text, and whether every check passed.
 */
export async function checkReport(config: Config, version: string): Promise<{ text: string; ok: boolean }> {
  const { policies, result: policyResult } = checkPolicies(config)
  const results = [...(policyResult === undefined ? [] : [policyResult]), ...(await checkSettings(config))]
  const failed = results.filter((result) => !result.ok).length
  const lines = [
    `api-gateway ${version} would run with:`,
    JSON.stringify(effectiveSettings(config, policies), null, 2),
    '',
    ...results.map((result) => `${result.ok ? 'ok  ' : 'FAIL'}  ${result.what}: ${result.detail}`),
    '',
    failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks failed`,
  ]
  return { text: `${lines.join('\n')}\n`, ok: failed === 0 }
}

/**
 * The policy file validated as a start would: its policies, or the start's error as a failed check.
 * Without a file, the environment's policies and no check.
 */
function checkPolicies(config: Config): { policies: PolicySet | null; result?: CheckResult } {
  const what = `GATEWAY_CONFIG ${config.policyFile}`
  try {
    const { policies } = loadPolicies(config, config.policyFile)
    return { policies, result: config.policyFile === null ? undefined : { what, ok: true, detail: `valid: ${policies.services.size} services` } }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    return { policies: null, result: { what, ok: false, detail: error.message } }
  }
}

/**
 * What the gateway would run with, secrets left out: one object for the `--check` report.
 * @param policies the effective policy of every service (null: the file did not validate).
 */
export function effectiveSettings(config: Config, policies: PolicySet | null = null): Record<string, unknown> {
  return {
    policy_file: config.policyFile,
    ...(policies === null ? {} : { policies: Object.fromEntries([...policies.services].map(([name, service]) => [name, describeService(service)])) }),
    listen: `${config.tls === null ? 'http' : 'https'}://${config.host}:${config.port}`,
    workers: config.workers,
    rate_limit: { per_minute: config.rateLimit, burst: config.rateLimitBurst },
    upstream: {
      timeout_ms: config.upstreamTimeoutMs,
      retries: config.upstreamRetries,
      circuit_failures: config.circuitFailures,
      circuit_cooldown_ms: config.circuitCooldownMs,
      circuit_statuses: [...config.circuitStatuses],
    },
    max_body_bytes: config.maxBodyBytes,
    events: {
      heartbeat_ms: config.events.heartbeatMs,
      buffer: config.events.buffer,
      history: config.events.history,
      max_streams_per_client: config.events.maxStreamsPerClient,
      publish_token: config.events.publishToken === '' ? 'none (loopback only)' : 'set',
    },
    cors_origins: config.corsOrigins,
    cluster_mode: config.redisUrl === null ? false : { redis: withoutCredentials(config.redisUrl), key_prefix: config.redisKeyPrefix },
    authentication: config.auth === null ? 'off' : config.auth.jwtSecret !== null ? 'HS256 (secret set)' : `RS256/ES256 from ${config.auth.jwksUrl!.origin}${config.auth.jwksUrl!.pathname}`,
    tls: config.tls === null ? 'off' : { cert: config.tls.certFile, key: config.tls.keyFile },
    log_level: config.logLevel,
  }
}

/** The well-known port of each scheme the gateway's URLs may have. */
const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443, 'redis:': 6379, 'rediss:': 6379 }

/** A TCP connection to the URL's host and port can be opened. */
function reachable(what: string, url: URL): Promise<CheckResult> {
  const port = Number(url.port || DEFAULT_PORTS[url.protocol] || 80)
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port, timeout: PROBE_TIMEOUT_MS })
    const done = (ok: boolean, detail: string) => {
      socket.destroy()
      resolve({ what, ok, detail })
    }
    socket.once('connect', () => done(true, 'accepts connections'))
    socket.once('timeout', () => done(false, `no connection within ${PROBE_TIMEOUT_MS} ms`))
    socket.once('error', (error: NodeJS.ErrnoException) => done(false, `cannot connect (${error.code ?? error.message})`))
  })
}

async function redisAnswers(url: string): Promise<CheckResult> {
  const what = 'REDIS_URL'
  const client = new RedisClient(url, { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: PROBE_TIMEOUT_MS })
  try {
    const reply = await Promise.race([client.connect().then(() => client.send('PING', [])), Bun.sleep(PROBE_TIMEOUT_MS).then(() => 'timeout')])
    return reply === 'PONG' ? { what, ok: true, detail: 'answers PING' } : { what, ok: false, detail: `no PONG within ${PROBE_TIMEOUT_MS} ms` }
  } catch (error) {
    // Bun says "Connection closed" whether nothing listens or Redis refused the credentials: tell them apart.
    const tcp = await reachable(what, new URL(url))
    return { what, ok: false, detail: tcp.ok ? `connected, but Redis refused (${withoutCredentials((error as Error).message)}): check the password or user in REDIS_URL` : tcp.detail }
  } finally {
    client.close()
  }
}

async function tlsLoads(config: Config): Promise<CheckResult> {
  try {
    loadTls(config.tls!)
    return { what: 'TLS_CERT_FILE / TLS_KEY_FILE', ok: true, detail: 'readable PEM, the key belongs to the certificate' }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    return { what: 'TLS_CERT_FILE / TLS_KEY_FILE', ok: false, detail: error.message }
  }
}

async function keySetLoads(url: URL): Promise<CheckResult> {
  const what = 'AUTH_JWKS_URL'
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), redirect: 'manual' })
    const keys = response.status === 200 ? ((await response.json()) as { keys?: unknown }).keys : undefined
    if (!Array.isArray(keys)) return { what, ok: false, detail: `status ${response.status}, not a JSON Web Key Set` }
    return { what, ok: true, detail: `${keys.length} keys` }
  } catch (error) {
    return { what, ok: false, detail: `cannot fetch (${withoutCredentials((error as Error).message)})` }
  }
}
