import { describe, expect, test } from 'bun:test'
import { ConfigError, SETTINGS, loadConfig, withoutCredentials } from '../src/config/settings'

const ROOT = new URL('..', import.meta.url).pathname

/** Runs the entry point from source with exactly `env` (plus PATH) and `args`. */
function runMain(env: Record<string, string>, args: string[] = []) {
  const result = Bun.spawnSync(['bun', 'src/main.ts', ...args], { cwd: ROOT, env: { PATH: process.env.PATH!, ...env }, timeout: 10_000 })
  return { exitCode: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
}

describe('configuration defaults', () => {
  test('an empty environment gives every documented default', () => {
    const config = loadConfig({})
    expect(config.port).toBe(8081)
    expect(config.host).toBe('0.0.0.0')
    expect(config.rateLimit).toBe(1000)
    expect(config.rateLimitBurst).toBe(1000)
    expect(config.logLevel).toBe('info')
    expect(config.upstreamTimeoutMs).toBe(30_000)
    expect(config.maxBodyBytes).toBe(10_485_760)
    expect(config.events).toEqual({
      heartbeatMs: 30_000,
      buffer: 100,
      history: 100,
      historyTtlMs: 300_000,
      questionTtlMs: 86_400_000,
      publishToken: '',
      hitlResponsePath: '/responses',
      maxStreamsPerClient: 32,
    })
    expect(config.corsOrigins).toBe('*')
    expect(config.redisKeyPrefix).toBe('gw:')
    expect(config.trustProxy.isEmpty).toBe(true)
    // Only what the gateway sees itself ejects an instance, unless statuses are listed.
    expect([...config.circuitStatuses]).toEqual([])
  })

  test('CIRCUIT_STATUSES is a comma list of statuses', () => {
    expect([...loadConfig({ CIRCUIT_STATUSES: '502, 503,504' }).circuitStatuses]).toEqual([502, 503, 504])
  })

  test('the built-in services exist with their default URLs', () => {
    const services = loadConfig({}).services
    expect([...services.keys()].sort()).toEqual(['fanout', 'hitl', 'orchestrator', 'parser', 'runner'])
    expect(services.get('runner')?.url).toBe('http://localhost:8082')
  })

  test('RATE_LIMIT_BURST defaults to RATE_LIMIT', () => {
    expect(loadConfig({ RATE_LIMIT: '60' }).rateLimitBurst).toBe(60)
    expect(loadConfig({ RATE_LIMIT: '60', RATE_LIMIT_BURST: '5' }).rateLimitBurst).toBe(5)
  })
})

describe('service discovery', () => {
  test('<NAME>_URL registers a lower-cased service and overrides a built-in', () => {
    const services = loadConfig({ MY_SERVICE_URL: 'http://10.0.0.5:9000', RUNNER_URL: 'https://runner.internal' }).services
    expect(services.get('my_service')?.instances[0]?.origin).toBe('http://10.0.0.5:9000')
    expect(services.get('runner')?.instances[0]?.origin).toBe('https://runner.internal')
  })

  test('a comma list registers several instances of one service, each trimmed, each with its own base path', () => {
    const runner = loadConfig({ RUNNER_URL: ' http://a:8080 , http://b:8080/v2/ ' }).services.get('runner')!
    expect(runner.url).toBe('http://a:8080,http://b:8080/v2/')
    expect(runner.instances.map((i) => [i.url, i.origin, i.basePath])).toEqual([
      ['http://a:8080', 'http://a:8080', ''],
      ['http://b:8080/v2/', 'http://b:8080', '/v2'],
    ])
    const config = loadConfig({})
    expect([config.upstreamRetries, config.circuitFailures, config.circuitCooldownMs]).toEqual([1, 5, 10_000])
  })

  test('a base URL keeps its path prefix, without a trailing slash', () => {
    expect(loadConfig({ X_URL: 'http://h:9000/base/' }).services.get('x')?.instances[0]?.basePath).toBe('/base')
    expect(loadConfig({ X_URL: 'http://h:9000' }).services.get('x')?.instances[0]?.basePath).toBe('')
  })

  test("the gateway's own *_URL settings and non-http values are not services", () => {
    const services = loadConfig({ AUTH_JWKS_URL: '', DATABASE_URL: 'postgres://db/x', REDIS_URL: '' }).services
    expect(services.has('database')).toBe(false)
    expect(services.has('redis')).toBe(false)
    expect(services.has('auth_jwks')).toBe(false)
  })

  test('the name events is reserved', () => {
    expect(() => loadConfig({ EVENTS_URL: 'http://h:1' })).toThrow(/reserved/)
  })
})

describe('bad settings stop the start', () => {
  const cases: [string, string][] = [
    ['PORT', 'abc'],
    ['PORT', '0'],
    ['PORT', '70000'],
    ['RATE_LIMIT', '-5'],
    ['RATE_LIMIT_BURST', '0'],
    ['UPSTREAM_TIMEOUT_MS', '1.5'],
    ['MAX_BODY_BYTES', '10MB'],
    ['SSE_BUFFER', '0'],
    ['LOG_LEVEL', 'loud'],
    ['TRUST_PROXY', '10.0.0.0/99'],
    ['TRUST_PROXY', 'not-an-ip'],
    ['ORCHESTRATOR_URL', 'localhost:8080'],
    ['MY_SERVICE_URL', 'http://'],
    ['MY_SERVICE_URL', 'http://h:9000/base?x=1'],
    ['CORS_ORIGINS', 'app.example.com'],
    ['HITL_RESPONSE_PATH', 'responses'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['REDIS_URL', 'redis://'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/db1'],
    ['REDIS_URL', 'redis://127.0.0.1:6379?x=1'],
    ['AUTH_JWKS_URL', 'file:///etc/jwks.json'],
    ['AUTH_JWKS_URL', 'not a url'],
    ['AUTH_CLIENT_CLAIM', 'client id'],
    ['AUTH_COOKIE', 'a;b'],
    ['UPSTREAM_RETRIES', '-1'],
    ['UPSTREAM_RETRIES', '11'],
    ['CIRCUIT_FAILURES', 'five'],
    ['CIRCUIT_COOLDOWN_MS', '0'],
    ['RUNNER_URL', 'http://a:1,'],
    ['RUNNER_URL', 'http://a:1,ftp://b:2'],
    ['RUNNER_URL', 'http://a:1,http://a:1/'],
    ['CIRCUIT_STATUSES', '503,abc'],
    ['CIRCUIT_STATUSES', '99'],
    ['CIRCUIT_STATUSES', '600'],
    ['SSE_MAX_STREAMS_PER_CLIENT', '0'],
  ]
  for (const [name, value] of cases) {
    test(`${name}=${value} is refused with a message naming the variable`, () => {
      let error: unknown
      try {
        loadConfig({ [name]: value })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toContain(name)
      expect((error as Error).message).toContain(value)
    })
  }

  test('the process exits 1 with exactly one stderr line and no stack trace', () => {
    const run = runMain({ PORT: '99999' })
    expect(run.exitCode).toBe(1)
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toBe('api-gateway: invalid PORT="99999": expected an integer from 1 to 65535')
  })

  test("WORKERS: a whole number or 'auto'; above 1 it needs REDIS_URL, and says so naming both", () => {
    if (process.platform === 'linux') expect(loadConfig({ WORKERS: '3', REDIS_URL: 'redis://h' }).workers).toBe(3)
    else expect(() => loadConfig({ WORKERS: '3', REDIS_URL: 'redis://h' })).toThrow('needs Linux')
    if (process.platform === 'linux') expect(loadConfig({ WORKERS: 'auto', REDIS_URL: 'redis://h' }).workers).toBeGreaterThanOrEqual(1)
    expect(() => loadConfig({ WORKERS: '2' })).toThrow('WORKERS=2 needs REDIS_URL')
    for (const bad of ['0', 'two', '-1', '1.5']) expect(() => loadConfig({ WORKERS: bad, REDIS_URL: 'redis://h' })).toThrow(`invalid WORKERS=${JSON.stringify(bad)}`)
  })

  test('REDIS_URL takes user, password, database index and rediss://', () => {
    for (const url of ['redis://127.0.0.1:6379', 'redis://user:pa%40ss@redis.internal:6380/3', 'rediss://cache.example.com', 'redis://h/'])
      expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url)
    expect(loadConfig({}).redisUrl).toBeNull()
  })

  test('authentication is off by default; a secret or a JWKS URL turns it on with the documented defaults', () => {
    expect(loadConfig({}).auth).toBeNull()
    expect(loadConfig({ AUTH_JWT_SECRET: ' spaces count ' }).auth).toEqual({
      jwtSecret: ' spaces count ',
      jwksUrl: null,
      issuer: null,
      audience: null,
      clientClaim: 'sub',
      cookie: 'access_token',
    })
    const jwks = loadConfig({ AUTH_JWKS_URL: 'https://id.example.com/jwks.json', AUTH_ISSUER: 'https://id.example.com/', AUTH_AUDIENCE: 'api' }).auth!
    expect([jwks.jwksUrl?.href, jwks.issuer, jwks.audience]).toEqual(['https://id.example.com/jwks.json', 'https://id.example.com/', 'api'])
  })

  test("a URL's password is never echoed in the error about it", () => {
    for (const [variable, value] of [['REDIS_URL', 'redis://user:hunter2@h:6379/x'], ['AUTH_JWKS_URL', 'ftp://user:hunter2@id.example.com/jwks']] as const) {
      const run = runMain({ [variable]: value })
      expect(run.exitCode).toBe(1)
      expect(run.stderr).toContain(`invalid ${variable}=`)
      expect(run.stderr).toContain('***@')
      expect(run.stderr).not.toContain('hunter2')
    }
  })

  test("withoutCredentials masks every URL's user and password, whatever the password holds", () => {
    const cases: [string, string][] = [
      ['redis://u:pw@h:6379/0', 'redis://***@h:6379/0'],
      ['redis://:pa/ss@h:6379', 'redis://***@h:6379'],
      ['redis://u:p@ss@h', 'redis://***@h'],
      ['http://a:1,http://admin:s3cret@b:2/x', 'http://a:1,http://***@b:2/x'],
      ['http://admin:pa,ss@b:2', 'http://***@b:2'],
      ['admin:s3cret@h:8080', '***@h:8080'],
      ['redis://admin:s3cr3t://@host:6379', 'redis://***@host:6379'],
      ['redis://default:s3cret', 'redis://default:***'],
      ['redis://default:s3cret/0', 'redis://default:***/0'],
      ['http://h:9000/base', 'http://h:9000/base'],
      ['http://[::1]:8080/x,https://h', 'http://[::1]:8080/x,https://h'],
      ['localhost:8080', 'localhost:8080'],
      ['cannot fetch (Unable to connect: http://u:pw@h/jwks)', 'cannot fetch (Unable to connect: http://***@h/jwks)'],
    ]
    for (const [value, masked] of cases) expect([value, withoutCredentials(value)]).toEqual([value, masked])
  })

  test('AUTH_JWT_SECRET with AUTH_JWKS_URL stops the start, and the message never shows the secret', () => {
    const run = runMain({ AUTH_JWT_SECRET: 'do-not-print-me', AUTH_JWKS_URL: 'https://id.example.com/jwks.json' })
    expect(run.exitCode).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toContain('AUTH_JWT_SECRET and AUTH_JWKS_URL are both set')
    expect(run.stderr + run.stdout).not.toContain('do-not-print-me')
  })

  test('WORKERS=1 is a plain process, as by default', () => {
    expect(() => loadConfig({ WORKERS: '1' })).not.toThrow()
  })
})

describe('listening', () => {
  test('a port already in use exits 1 with one line naming the address', () => {
    const taken = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    try {
      const run = runMain({ HOST: '127.0.0.1', PORT: String(taken.port) })
      expect(run.exitCode).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toContain(`cannot listen on 127.0.0.1:${taken.port}`)
    } finally {
      taken.stop(true)
    }
  })
})

describe('command line', () => {
  test('--help prints every setting of the settings table, with its default, and exits 0', () => {
    const run = runMain({}, ['--help'])
    expect(run.exitCode).toBe(0)
    for (const setting of Object.values(SETTINGS)) {
      const line = run.stdout.split('\n').find((l) => l.trim().startsWith(`${setting.variable} `))
      expect(line).toBeDefined()
      if (setting.default !== '') expect(line).toContain(`(default: ${setting.default})`)
    }
    expect(run.stdout).toContain('<NAME>_URL')
    expect(run.stdout).toContain('(default: 8081)')
    expect(run.stdout).toContain('Usage: api-gateway [demo | --check | --healthcheck | --help | --version]')
  })

  test('--version prints the package version and exits 0', async () => {
    const run = runMain({}, ['--version'])
    expect(run.exitCode).toBe(0)
    const { version } = await Bun.file(`${ROOT}package.json`).json()
    expect(run.stdout.trim()).toBe(version)
  })

  test('an unknown argument exits 1 with one line', () => {
    const run = runMain({}, ['--frobnicate'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
  })
})
