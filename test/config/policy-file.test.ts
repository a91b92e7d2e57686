/**
 * The policy file (SPEC §12): what it may say, how every mistake is reported (the file, the
 * key's path, what is allowed), how its levels resolve against the environment, and how the
 * start, `--config`, `--check` and the compiled binary treat it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type RoutePolicy, type ServicePolicy, describeService, policiesOfEnvironment } from '../../src/config/policies'
import { type LoadedPolicies, loadPolicies, policiesOfText } from '../../src/config/policy-file'
import { ConfigError, loadConfig } from '../../src/config/settings'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { startGatewayProcess } from '../helpers/gateway-process'
import { waitFor } from '../helpers/wait'
import { TEST_SECRET } from '../helpers/tokens'

const ROOT = new URL('../..', import.meta.url).pathname
const MAIN = `${ROOT}src/main.ts`
const BINARY = `${ROOT}bin/api-gateway`
const WITH_AUTH = { AUTH_JWT_SECRET: TEST_SECRET }
const BUILT_IN = ['ORCHESTRATOR', 'RUNNER', 'HITL', 'PARSER', 'FANOUT']

type Env = Record<string, string>

let directory: string
let backend: MockBackend

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'policy-file-test-'))
  backend = startBackend()
})

afterAll(() => {
  backend.stop()
  rmSync(directory, { recursive: true, force: true })
})

/** Writes `text` to a new file in the test's directory and returns its path. */
let files = 0
function policyFile(text: string): string {
  const path = join(directory, `policies-${++files}.yaml`)
  writeFileSync(path, text)
  return path
}

/** A document with one service, `billing`, holding `billing` (a `url` unless it sets one), as JSON (which is YAML). */
function billingDocument(billing: Record<string, unknown>): string {
  return JSON.stringify({ services: { billing: { url: 'http://127.0.0.1:9000', ...billing } } })
}

/** The ConfigError `text` gives as `p.yaml` under the environment `env`: its message, one line. */
function rejection(text: string, env: Env = {}): string {
  let caught: unknown
  try {
    policiesOfText(loadConfig(env), 'p.yaml', text)
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(ConfigError)
  const message = (caught as ConfigError).message
  expect(message).not.toContain('\n')
  return message
}

/** `text` is refused with a message naming the file, exactly `path`, then every one of `words`. */
function expectRefused(text: string, path: string, words: (string | RegExp)[], env: Env = {}): string {
  const message = rejection(text, env)
  expect(message).toStartWith(`p.yaml: ${path}: `)
  const rest = message.slice(`p.yaml: ${path}: `.length)
  for (const word of words) {
    if (typeof word === 'string') expect(rest).toContain(word)
    else expect(rest).toMatch(word)
  }
  return message
}

function accepted(text: string, env: Env = {}): LoadedPolicies {
  return policiesOfText(loadConfig(env), 'p.yaml', text)
}

function service(loaded: LoadedPolicies, name: string): ServicePolicy {
  const found = loaded.policies.services.get(name)
  expect(found).toBeDefined()
  return found!
}

function route(of: ServicePolicy, path: string): RoutePolicy {
  const found = of.routes.find((entry) => entry.path === path)
  expect(found).toBeDefined()
  return found!.policy
}

/** Runs `bun src/main.ts` (or `command`) with exactly `env` (plus PATH), without blocking this process's servers. */
async function run(args: string[], env: Env, command: string[] = ['bun', MAIN]) {
  const child = Bun.spawn([...command, ...args], { cwd: ROOT, env: { PATH: process.env.PATH!, ...env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  clearTimeout(timer)
  return { exitCode, stdout, stderr }
}

/** The process ended with status 1 and exactly one stderr line, no stack trace: that line. */
function oneLineRefusal(result: { exitCode: number | null; stderr: string }): string {
  expect(result.exitCode).toBe(1)
  const lines = result.stderr.split('\n').filter((line) => line !== '')
  expect(lines).toHaveLength(1)
  expect(result.stderr).not.toMatch(/^\s+at\s/m)
  expect(result.stderr).not.toContain('error:')
  return lines[0]!
}

const TYPO_IN_BILLING = 'services:\n  billing:\n    url: http://127.0.0.1:9000\n    routes:\n      - path: /admin\n        methods: [GET, FETCH]\n'

describe('validation: every error names the file, the key path and what is allowed', () => {
  test('an unknown service key names the closest known key (timout_ms → timeout_ms)', () => {
    expectRefused(billingDocument({ timout_ms: 5000 }), 'services.billing.timout_ms', ['unknown key', 'timeout_ms'])
    expectRefused(billingDocument({ retires: 1 }), 'services.billing.retires', ['unknown key', 'retries'])
  })

  test('an unknown route key names the closest route key', () => {
    expectRefused(billingDocument({ routes: [{ path: '/a' }, { path: '/b', timout_ms: 5 }] }), 'services.billing.routes[1].timout_ms', ['unknown key', 'timeout_ms'])
    expectRefused(billingDocument({ routes: [{ pth: '/a' }] }), 'services.billing.routes[0].pth', ['unknown key', 'path'])
  })

  test('a route takes no url, circuit or case_sensitive: they are unknown keys there', () => {
    for (const key of ['url', 'circuit', 'case_sensitive', 'routes']) {
      const value = key === 'url' ? 'http://127.0.0.1:1' : key === 'circuit' ? { failures: 1 } : key === 'routes' ? [] : false
      expectRefused(billingDocument({ routes: [{ path: '/a', [key]: value }] }), `services.billing.routes[0].${key}`, ['unknown key'])
    }
  })

  test('an unknown circuit key names the closest circuit key (failurs → failures)', () => {
    expectRefused(billingDocument({ circuit: { failurs: 3 } }), 'services.billing.circuit.failurs', ['unknown key', 'failures'])
  })

  test('an unknown rate_limit key names the closest one, at service and route level (brust → burst)', () => {
    expectRefused(billingDocument({ rate_limit: { rate: 60, brust: 10 } }), 'services.billing.rate_limit.brust', ['unknown key', 'burst'])
    expectRefused(billingDocument({ routes: [{ path: '/a', rate_limit: { rate: 60, brust: 10 } }] }), 'services.billing.routes[0].rate_limit.brust', ['unknown key', 'burst'])
  })

  test('an unknown header-rules key names the closest one (sett → set, remov → remove)', () => {
    expectRefused(billingDocument({ request_headers: { sett: { 'X-A': 'b' } } }), 'services.billing.request_headers.sett', ['unknown key', 'set'])
    expectRefused(billingDocument({ routes: [{ path: '/a', response_headers: { remov: ['Server'] } }] }), 'services.billing.routes[0].response_headers.remov', ['unknown key', 'remove'])
  })

  test('a top-level typo (servics) names services', () => {
    expectRefused('servics:\n  billing:\n    url: http://127.0.0.1:9000\n', 'servics', ['unknown key', 'services'])
  })

  test('timeout_ms must be an integer >= 1: 0, "5000" and 1.5 are refused', () => {
    for (const value of [0, '5000', 1.5, -1]) expectRefused(billingDocument({ timeout_ms: value }), 'services.billing.timeout_ms', [JSON.stringify(value), '>= 1'])
    expectRefused(billingDocument({ routes: [{ path: '/a', timeout_ms: 0 }] }), 'services.billing.routes[0].timeout_ms', ['>= 1'])
  })

  test('retries must be 0 to 10: 11 and -1 are refused', () => {
    expectRefused(billingDocument({ retries: 11 }), 'services.billing.retries', ['11', /0 to 10/])
    expectRefused(billingDocument({ retries: -1 }), 'services.billing.retries', [/0 to 10/])
    expect(service(accepted(billingDocument({ retries: 10 })), 'billing').policy.retries).toBe(10)
  })

  test('rate_limit: rate 0 and burst 0 are refused; anything but off/a mapping names the choices', () => {
    expectRefused(billingDocument({ rate_limit: { rate: 0 } }), 'services.billing.rate_limit.rate', ['0', '>= 1'])
    expectRefused(billingDocument({ rate_limit: { rate: 60, burst: 0 } }), 'services.billing.rate_limit.burst', ['0', '>= 1'])
    expectRefused(billingDocument({ rate_limit: { rate: 60, key: 'user' } }), 'services.billing.rate_limit.key', ['"user"', 'ip', 'subject'])
    expectRefused(billingDocument({ rate_limit: 'on' }), 'services.billing.rate_limit', ['"on"', 'off'])
    expectRefused(billingDocument({ routes: [{ path: '/a', rate_limit: { rate: 0 } }] }), 'services.billing.routes[0].rate_limit.rate', ['>= 1'])
  })

  test('circuit.statuses holds HTTP statuses 100-599: 600 is refused at its index', () => {
    expectRefused(billingDocument({ circuit: { statuses: [502, 600] } }), 'services.billing.circuit.statuses[1]', ['600', /599/])
    expectRefused(billingDocument({ circuit: { cooldown_ms: 0 } }), 'services.billing.circuit.cooldown_ms', ['>= 1'])
    expectRefused(billingDocument({ circuit: { failures: -1 } }), 'services.billing.circuit.failures', ['>= 0'])
  })

  test('methods: an unknown method is refused at its index, naming the methods allowed', () => {
    const message = expectRefused(TYPO_IN_BILLING, 'services.billing.routes[0].methods[1]', ['"FETCH"', 'GET', 'POST', 'DELETE'])
    expect(message).not.toContain('routes[0].methods[0]')
    expectRefused(billingDocument({ routes: [{ path: '/a', methods: [] }] }), 'services.billing.routes[0].methods', ['GET'])
  })

  test('case_sensitive must be true or false: "yes" is refused', () => {
    expectRefused('services:\n  billing:\n    url: http://127.0.0.1:9000\n    case_sensitive: "yes"\n', 'services.billing.case_sensitive', ['"yes"', 'true or false'])
  })

  test('rate_limit key subject without authentication configured is refused (it would quietly limit per IP)', () => {
    expectRefused(billingDocument({ rate_limit: { rate: 60, key: 'subject' } }), 'services.billing.rate_limit.key', ['subject', 'authentication'])
    expect(service(accepted(billingDocument({ rate_limit: { rate: 60, key: 'subject' } }), WITH_AUTH), 'billing').policy.rateLimit?.key).toBe('subject')
  })

  test('auth must be required, optional or off', () => {
    expectRefused(billingDocument({ auth: 'maybe' }), 'services.billing.auth', ['"maybe"', 'required', 'optional', 'off'], WITH_AUTH)
  })

  test('wrong types name what the key takes: routes a list, url a string or list, header values strings', () => {
    expectRefused(billingDocument({ routes: { path: '/a' } }), 'services.billing.routes', ['list'])
    expectRefused(billingDocument({ url: 5 }), 'services.billing.url', ['http://', 'https://'])
    expectRefused(billingDocument({ request_headers: { set: { 'X-A': 2 } } }), 'services.billing.request_headers.set.X-A', ['string'])
    expectRefused(billingDocument({ request_headers: { remove: 'X-A' } }), 'services.billing.request_headers.remove', ['list'])
    expectRefused(billingDocument({ routes: [{ methods: ['GET'] }] }), 'services.billing.routes[0].path', ['required'])
  })

  test('a document that is not a mapping of services is refused', () => {
    expect(rejection('42')).toStartWith('p.yaml: ')
    expect(rejection('')).toStartWith('p.yaml: ')
    expectRefused('services: [billing]\n', 'services', ['mapping'])
  })

  test('a service name must be 1-64 characters of [a-z0-9_-]', () => {
    const long = 'a'.repeat(65)
    expectRefused('services:\n  Billing:\n    url: http://127.0.0.1:9000\n', 'services.Billing', ['1-64', '[a-z0-9_-]'])
    expectRefused(`services:\n  ${long}:\n    url: http://127.0.0.1:9000\n`, `services.${long}`, ['1-64', '[a-z0-9_-]'])
    expect(rejection('services:\n  "":\n    url: http://127.0.0.1:9000\n')).toContain('[a-z0-9_-]')
    expect(rejection('services:\n  bill.ing:\n    url: http://127.0.0.1:9000\n')).toContain('bill.ing')
    const fine = 'a'.repeat(64)
    expect(accepted(`services:\n  ${fine}:\n    url: http://127.0.0.1:9000\n  my_svc-2:\n    url: http://127.0.0.1:9001\n`).policies.services.has(fine)).toBe(true)
  })

  test('the service name events is reserved', () => {
    expectRefused('services:\n  events:\n    url: http://127.0.0.1:9000\n', 'services.events', ['reserved'])
  })

  test('a url that is not http(s) is refused, alone or in a list', () => {
    expectRefused(billingDocument({ url: 'ftp://127.0.0.1:21' }), 'services.billing.url', ['http://', 'ftp://127.0.0.1:21'])
    expectRefused(billingDocument({ url: ['http://127.0.0.1:1', 'ftp://127.0.0.1:21'] }), 'services.billing.url', ['http://', 'ftp://127.0.0.1:21'])
    expectRefused(billingDocument({ url: 'http://127.0.0.1:1, redis://127.0.0.1:6379' }), 'services.billing.url', ['http://', 'redis://'])
    expectRefused(billingDocument({ url: [] }), 'services.billing.url', ['http://'])
    expectRefused(billingDocument({ url: '' }), 'services.billing.url', ['http://'])
  })

  test('a url is validated even when <NAME>_URL replaces it: the file is wrong whatever the environment', () => {
    expectRefused(billingDocument({ url: 'ftp://127.0.0.1:21' }), 'services.billing.url', ['http://', 'ftp://127.0.0.1:21'], { BILLING_URL: 'http://127.0.0.1:9000' })
  })

  test('a service with no URL at all (neither in the file nor by <NAME>_URL) is refused at its url', () => {
    expectRefused(JSON.stringify({ services: { billing: { timeout_ms: 5 } } }), 'services.billing.url', ['required', 'BILLING_URL'])
    // A built-in service has its default URL; one named by the environment has that one.
    expect(service(accepted(JSON.stringify({ services: { runner: { timeout_ms: 5 } } })), 'runner').url).toBe('http://localhost:8082')
    expect(service(accepted(JSON.stringify({ services: { billing: { timeout_ms: 5 } } }), { BILLING_URL: 'http://127.0.0.1:9000' }), 'billing').url).toBe('http://127.0.0.1:9000')
  })

  test('a route path must start with /', () => {
    expectRefused(billingDocument({ routes: [{ path: 'admin' }] }), 'services.billing.routes[0].path', ['"admin"', 'starting with /'])
    expectRefused(billingDocument({ routes: [{ path: '/a' }, { path: '' }] }), 'services.billing.routes[1].path', ['starting with /'])
  })

  test('a route path holding an ambiguous spelling (;, %2F, %5C, \\, //, . or ..) is refused', () => {
    for (const path of ['/a;b', '/a%2Fb', '/a%2fb', '/a%5Cb', '/a\\b', '//a', '/a//b', '/a/../b', '/a/./b', '/a/%2e%2e/b']) {
      expectRefused(billingDocument({ routes: [{ path }] }), 'services.billing.routes[0].path', [JSON.stringify(path)])
    }
  })

  test('two routes with one path are refused at the second: /a twice, /a and /a/, /admin and /%61dmin', () => {
    expectRefused(billingDocument({ routes: [{ path: '/a' }, { path: '/a' }] }), 'services.billing.routes[1].path', ['routes[0]'])
    expectRefused(billingDocument({ routes: [{ path: '/a' }, { path: '/b' }, { path: '/a/' }] }), 'services.billing.routes[2].path', ['"/a/"', 'routes[0]'])
    expectRefused(billingDocument({ routes: [{ path: '/admin' }, { path: '/%61dmin' }] }), 'services.billing.routes[1].path', ['routes[0]'])
  })

  test('with case_sensitive: false, paths that differ only in case are one path; with the default they are two', () => {
    expectRefused(billingDocument({ case_sensitive: false, routes: [{ path: '/Admin' }, { path: '/admin' }] }), 'services.billing.routes[1].path', ['routes[0]'])
    expect(service(accepted(billingDocument({ routes: [{ path: '/Admin' }, { path: '/admin' }] })), 'billing').routes).toHaveLength(2)
  })

  test('require where auth is off (the route\'s, or inherited from its service, off or false) is refused at require', () => {
    expectRefused(billingDocument({ routes: [{ path: '/a', auth: 'off', require: { roles: 'admin' } }] }), 'services.billing.routes[0].require', ['auth', 'off'], WITH_AUTH)
    expectRefused(billingDocument({ auth: false, routes: [{ path: '/a', require: { roles: 'admin' } }] }), 'services.billing.routes[0].require', ['auth', 'off'], WITH_AUTH)
    expectRefused('services:\n  billing:\n    url: http://127.0.0.1:9000\n    auth: off\n    routes:\n      - path: /a\n        require: { roles: admin }\n', 'services.billing.routes[0].require', ['off'], WITH_AUTH)
  })

  test('require without authentication configured is refused at require', () => {
    expectRefused(billingDocument({ routes: [{ path: '/a', require: { roles: 'admin' } }] }), 'services.billing.routes[0].require', ['authentication', 'AUTH_JWT_SECRET'])
    expect(route(service(accepted(billingDocument({ routes: [{ path: '/a', require: { roles: 'admin' } }] }), WITH_AUTH), 'billing'), '/a').require).toEqual([{ claim: 'roles', values: ['admin'] }])
  })

  test('auth: required or optional without authentication configured is refused, at service and route level', () => {
    expectRefused(billingDocument({ auth: 'required' }), 'services.billing.auth', ['authentication', 'AUTH_JWT_SECRET'])
    expectRefused(billingDocument({ auth: 'optional' }), 'services.billing.auth', ['authentication'])
    expectRefused(billingDocument({ routes: [{ path: '/a' }, { path: '/b', auth: 'optional' }] }), 'services.billing.routes[1].auth', ['authentication'])
    expect(service(accepted(billingDocument({ auth: 'off' })), 'billing').policy.auth).toBe('off')
    expect(service(accepted(billingDocument({ auth: 'optional' }), WITH_AUTH), 'billing').policy.auth).toBe('optional')
  })

  test("a header the gateway owns cannot be set or removed, in either direction, whatever its case or an underscore spelling", () => {
    const owned = ['X-Forwarded-For', 'X-Forwarded-Proto', 'X-Real-IP', 'X-Request-Id', 'X-Auth-Subject', 'Host', 'Content-Length', 'Connection', 'Transfer-Encoding', 'Keep-Alive', 'Upgrade', 'RateLimit-Limit', 'Retry-After', 'Access-Control-Allow-Origin', 'traceparent', 'tracestate', 'x-forwarded-host', 'X_Real_IP', 'x_forwarded_for', 'X_Request_Id']
    for (const name of owned) {
      expectRefused(billingDocument({ request_headers: { set: { [name]: 'v' } } }), `services.billing.request_headers.set.${name}`, [name])
      expectRefused(billingDocument({ response_headers: { set: { [name]: 'v' } } }), `services.billing.response_headers.set.${name}`, [name])
      expectRefused(billingDocument({ request_headers: { remove: ['X-Debug', name] } }), 'services.billing.request_headers.remove[1]', [name])
      expectRefused(billingDocument({ routes: [{ path: '/a', response_headers: { remove: [name] } }] }), 'services.billing.routes[0].response_headers.remove[0]', [name])
    }
    // Its own headers are fine.
    accepted(billingDocument({ request_headers: { set: { 'X-Api-Version': '2' }, remove: ['X-Debug', 'X-Forwarded'] }, response_headers: { set: { 'Cache-Control': 'no-store' }, remove: ['Server'] } }))
  })

  test('a header name that is not a token is refused', () => {
    expectRefused(billingDocument({ request_headers: { remove: ['Bad Name'] } }), 'services.billing.request_headers.remove[0]', ['"Bad Name"', 'header name'])
    expectRefused(billingDocument({ response_headers: { remove: ['X-Ok', 'X-A:b'] } }), 'services.billing.response_headers.remove[1]', ['header name'])
    const message = rejection(billingDocument({ response_headers: { set: { 'Bad Name': 'v' } } }))
    expect(message).toStartWith('p.yaml: services.billing.response_headers.set')
    expect(message).toContain('Bad Name')
    expect(message).toContain('header name')
  })

  test('a header value holding CR or LF (or another control character) is refused', () => {
    for (const value of ['a\r\nInjected: 1', 'a\nb', 'a\rb', 'a\u0000b']) {
      expectRefused(billingDocument({ response_headers: { set: { 'X-A': value } } }), 'services.billing.response_headers.set.X-A', ['CR', 'LF'])
      expectRefused(billingDocument({ routes: [{ path: '/a', request_headers: { set: { 'X-A': value } } }] }), 'services.billing.routes[0].request_headers.set.X-A', ['CR', 'LF'])
    }
    expect(service(accepted(billingDocument({ response_headers: { set: { 'X-A': 'a\tb c' } } })), 'billing').policy.responseHeaders?.set).toEqual([['x-a', 'a\tb c']])
  })

  test('a YAML syntax error names the file and says the YAML is not valid', () => {
    const message = rejection('services:\n  billing:\n    url: [http://127.0.0.1:9000\n')
    expect(message).toStartWith('p.yaml: ')
    expect(message).toContain('YAML')
  })

  test('an unreadable file (missing, or a directory) names the path and says it cannot be read', () => {
    const config = loadConfig({})
    const missing = join(directory, 'does-not-exist.yaml')
    expect(() => loadPolicies(config, missing)).toThrow(ConfigError)
    expect(() => loadPolicies(config, missing)).toThrow(`${missing}: cannot read`)
    const folder = join(directory, 'a-directory.yaml')
    mkdirSync(folder, { recursive: true })
    expect(() => loadPolicies(config, folder)).toThrow(`${folder}: cannot read`)
  })

  test('loadPolicies reads the file and names it by its path in errors', () => {
    const path = policyFile(TYPO_IN_BILLING)
    expect(() => loadPolicies(loadConfig({}), path)).toThrow(`${path}: services.billing.routes[0].methods[1]: `)
    const good = policyFile(billingDocument({ timeout_ms: 1234 }))
    const loaded = loadPolicies(loadConfig({}), good)
    expect(loaded.text).toBe(billingDocument({ timeout_ms: 1234 }))
    expect(service(loaded, 'billing').policy.timeoutMs).toBe(1234)
    expect(loadPolicies(loadConfig({}), null)).toEqual({ policies: policiesOfEnvironment(loadConfig({})), urlsFromEnvironment: [], text: null })
  })
})

describe('precedence and inheritance: route > service > environment', () => {
  const ENV = { UPSTREAM_TIMEOUT_MS: '7000', UPSTREAM_RETRIES: '2', MAX_BODY_BYTES: '5000', RATE_LIMIT: '100', RATE_LIMIT_BURST: '20', ...WITH_AUTH }
  const FILE = `
services:
  billing:
    url: http://127.0.0.1:9000/v2
    timeout_ms: 5000
    retries: 0
    max_body_bytes: 1048576
    auth: optional
    rate_limit: { rate: 600, burst: 100, key: subject }
    routes:
      - path: /inherits
      - path: /own
        timeout_ms: 100
        retries: 3
        max_body_bytes: 10
        auth: required
        rate_limit: { rate: 60 }
      - path: /public
        auth: off
        rate_limit: off
      - path: /legacy
        auth: false
        rate_limit: false
  plain:
    url: http://127.0.0.1:9001
    routes:
      - path: /x
`

  test('timeout_ms, retries and max_body_bytes: a route beats its service, which beats the environment; unset levels inherit', () => {
    const loaded = accepted(FILE, ENV)
    const billing = service(loaded, 'billing')
    expect([billing.policy.timeoutMs, billing.policy.retries, billing.policy.maxBodyBytes]).toEqual([5000, 0, 1_048_576])
    const inherits = route(billing, '/inherits')
    expect([inherits.timeoutMs, inherits.retries, inherits.maxBodyBytes]).toEqual([5000, 0, 1_048_576])
    const own = route(billing, '/own')
    expect([own.timeoutMs, own.retries, own.maxBodyBytes]).toEqual([100, 3, 10])
    const plain = service(loaded, 'plain')
    expect([plain.policy.timeoutMs, plain.policy.retries, plain.policy.maxBodyBytes]).toEqual([7000, 2, 5000])
    const x = route(plain, '/x')
    expect([x.timeoutMs, x.retries, x.maxBodyBytes]).toEqual([7000, 2, 5000])
  })

  test('auth: a route beats its service, which beats the environment (required while authentication is configured); off and false are off', () => {
    const loaded = accepted(FILE, ENV)
    const billing = service(loaded, 'billing')
    expect(billing.policy.auth).toBe('optional')
    expect(route(billing, '/inherits').auth).toBe('optional')
    expect(route(billing, '/own').auth).toBe('required')
    expect(route(billing, '/public').auth).toBe('off')
    expect(route(billing, '/legacy').auth).toBe('off')
    expect(service(loaded, 'plain').policy.auth).toBe('required')
    expect(route(service(loaded, 'plain'), '/x').auth).toBe('required')
    // Without authentication configured the environment's auth is off, and so is every level's.
    expect(service(accepted('services:\n  plain:\n    url: http://127.0.0.1:9001\n'), 'plain').policy.auth).toBe('off')
  })

  test('rate_limit: the most specific level that sets it decides, and its bucket name says which (global, service:<name>, route:<name>:<path>)', () => {
    const loaded = accepted(FILE, ENV)
    const billing = service(loaded, 'billing')
    expect(billing.policy.rateLimit).toEqual({ bucket: 'service:billing', perMinute: 600, burst: 100, key: 'subject' })
    // A route that sets nothing shares its service's buckets.
    expect(route(billing, '/inherits').rateLimit).toEqual({ bucket: 'service:billing', perMinute: 600, burst: 100, key: 'subject' })
    // Its own: burst defaults to the rate, key to ip.
    expect(route(billing, '/own').rateLimit).toEqual({ bucket: 'route:billing:/own', perMinute: 60, burst: 60, key: 'ip' })
    expect(route(billing, '/public').rateLimit).toBeNull()
    expect(route(billing, '/legacy').rateLimit).toBeNull()
    const plain = service(loaded, 'plain')
    expect(plain.policy.rateLimit).toEqual({ bucket: 'global', perMinute: 100, burst: 20, key: 'ip' })
    expect(route(plain, '/x').rateLimit?.bucket).toBe('global')
    expect(service(accepted(billingDocument({ rate_limit: 'off' }), ENV), 'billing').policy.rateLimit).toBeNull()
    expect(service(accepted('services:\n  billing:\n    url: http://127.0.0.1:9000\n    rate_limit: false\n', ENV), 'billing').policy.rateLimit).toBeNull()
  })

  test('describeService shows each level as --check prints it: route paths, auth, rate_limit with its buckets, limits', () => {
    const described = describeService(service(accepted(FILE, ENV), 'billing'))
    expect(described).toMatchObject({
      url: 'http://127.0.0.1:9000/v2',
      case_sensitive: true,
      timeout_ms: 5000,
      retries: 0,
      max_body_bytes: 1_048_576,
      auth: 'optional',
      rate_limit: { rate: 600, burst: 100, key: 'subject', buckets: 'service:billing' },
    })
    const routes = described.routes as Record<string, unknown>[]
    expect(routes.map((r) => r.path).sort()).toEqual(['/inherits', '/legacy', '/own', '/public'])
    expect(routes.find((r) => r.path === '/own')).toMatchObject({ timeout_ms: 100, retries: 3, max_body_bytes: 10, auth: 'required', rate_limit: { rate: 60, burst: 60, key: 'ip', buckets: 'route:billing:/own' } })
    expect(routes.find((r) => r.path === '/public')).toMatchObject({ auth: 'off', rate_limit: 'off' })
  })

  test("header rules: a route's set beats its service's for the same name, remove adds up, a set name is not also removed", () => {
    const text = billingDocument({
      request_headers: { set: { 'X-Api-Version': '2', 'X-Tenant': 'acme' }, remove: ['X-Debug', 'X-Trace-Me'] },
      response_headers: { set: { 'Cache-Control': 'no-store' }, remove: ['Server'] },
      routes: [
        { path: '/inherits' },
        { path: '/own', request_headers: { set: { 'x-api-version': '3', 'X-Trace-Me': 'yes' }, remove: ['X-Other'] }, response_headers: { remove: ['X-Powered-By'] } },
      ],
    })
    const billing = service(accepted(text), 'billing')
    expect(billing.policy.requestHeaders).toEqual({ set: [['x-api-version', '2'], ['x-tenant', 'acme']], remove: ['x-debug', 'x-trace-me'] })
    expect(route(billing, '/inherits').requestHeaders).toEqual(billing.policy.requestHeaders)
    const own = route(billing, '/own')
    expect(new Map(own.requestHeaders!.set)).toEqual(new Map([['x-api-version', '3'], ['x-tenant', 'acme'], ['x-trace-me', 'yes']]))
    expect([...own.requestHeaders!.remove].sort()).toEqual(['x-debug', 'x-other'])
    expect(own.responseHeaders).toEqual({ set: [['cache-control', 'no-store']], remove: ['server', 'x-powered-by'] })
    // A service without rules has none, nor do its routes.
    const bare = service(accepted(billingDocument({ routes: [{ path: '/a' }] })), 'billing')
    expect([bare.policy.requestHeaders, bare.policy.responseHeaders, route(bare, '/a').requestHeaders]).toEqual([null, null, null])
  })

  test("header rules: a route's remove beats its service's set for the same name (the header is not sent)", () => {
    const text = billingDocument({
      request_headers: { set: { 'X-Api-Version': '2', 'X-Tenant': 'acme' } },
      response_headers: { set: { 'Cache-Control': 'no-store' } },
      routes: [{ path: '/raw', request_headers: { remove: ['X-Api-Version'] }, response_headers: { remove: ['Cache-Control'] } }],
    })
    const raw = route(service(accepted(text), 'billing'), '/raw')
    expect(raw.requestHeaders).toEqual({ set: [['x-tenant', 'acme']], remove: ['x-api-version'] })
    expect(raw.responseHeaders).toEqual({ set: [], remove: ['cache-control'] })
  })

  test("a built-in service the file does not name keeps the environment's policy, exactly", () => {
    const config = loadConfig(ENV)
    const environment = policiesOfEnvironment(config)
    const loaded = policiesOfText(config, 'p.yaml', FILE)
    for (const name of ['orchestrator', 'runner', 'hitl', 'parser', 'fanout']) {
      expect(describeService(service(loaded, name))).toEqual(describeService(environment.services.get(name)!))
      expect(service(loaded, name).policy.rateLimit?.bucket).toBe('global')
      expect(service(loaded, name).routes).toEqual([])
    }
    expect(loaded.policies.global).toEqual(environment.global)
  })

  test("a service named both in the file and by <NAME>_URL takes the environment's URL and the file's policies, and is listed in urlsFromEnvironment", () => {
    const env = { ...ENV, BILLING_URL: 'http://127.0.0.1:7777,http://127.0.0.1:7778', RUNNER_URL: 'http://127.0.0.1:7779' }
    const text = `${FILE}  runner:\n    timeout_ms: 42\n`
    const loaded = accepted(text, env)
    const billing = service(loaded, 'billing')
    expect(billing.url).toBe('http://127.0.0.1:7777,http://127.0.0.1:7778')
    expect(billing.instances.map((i) => i.url)).toEqual(['http://127.0.0.1:7777', 'http://127.0.0.1:7778'])
    expect(billing.policy.timeoutMs).toBe(5000)
    expect(billing.routes).toHaveLength(4)
    // runner sets no url in the file: nothing was replaced, so it is not listed.
    expect(service(loaded, 'runner').url).toBe('http://127.0.0.1:7779')
    expect(service(loaded, 'runner').policy.timeoutMs).toBe(42)
    expect(loaded.urlsFromEnvironment).toEqual(['billing'])
    expect(accepted(FILE, ENV).urlsFromEnvironment).toEqual([])
  })

  test('a url list registers several instances; circuit keys replace the environment one by one', () => {
    const loaded = accepted(billingDocument({ url: ['http://127.0.0.1:9000', 'http://127.0.0.1:9001/v2/'], circuit: { failures: 3, statuses: [502, 503] } }), { CIRCUIT_FAILURES: '9', CIRCUIT_COOLDOWN_MS: '1234' })
    const billing = service(loaded, 'billing')
    expect(billing.instances.map((i) => [i.origin, i.basePath])).toEqual([
      ['http://127.0.0.1:9000', ''],
      ['http://127.0.0.1:9001', '/v2'],
    ])
    expect({ ...billing.circuit, statuses: [...billing.circuit.statuses] }).toEqual({ failures: 3, cooldownMs: 1234, statuses: [502, 503] })
  })

  test('routes are kept longest first, whatever order the file lists them in', () => {
    const billing = service(accepted(billingDocument({ routes: [{ path: '/a' }, { path: '/a/b/c' }, { path: '/z' }, { path: '/a/b' }, { path: '/q/r/s/t' }] })), 'billing')
    const lengths = billing.routes.map((r) => r.segments.length)
    expect(lengths).toEqual([...lengths].sort((x, y) => y - x))
    expect(billing.routes.map((r) => r.path).slice(0, 3)).toEqual(['/q/r/s/t', '/a/b/c', '/a/b'])
    expect(billing.routes.map((r) => r.path).slice(3).sort()).toEqual(['/a', '/z'])
  })

  test('case_sensitive: false folds route paths for matching (the path as written is kept); the default keeps case', () => {
    const folded = service(accepted(billingDocument({ case_sensitive: false, routes: [{ path: '/Admin/Users' }, { path: '/%41pi' }] })), 'billing')
    expect(folded.caseSensitive).toBe(false)
    expect(folded.routes.map((r) => [r.path, r.segments])).toEqual([
      ['/Admin/Users', ['admin', 'users']],
      ['/%41pi', ['api']],
    ])
    const kept = service(accepted(billingDocument({ routes: [{ path: '/Admin/' }] })), 'billing')
    expect(kept.caseSensitive).toBe(true)
    expect(kept.routes.map((r) => r.segments)).toEqual([['Admin']])
  })

  test('methods and require resolve onto the route: a list of claim values means any one of them', () => {
    const loaded = accepted(billingDocument({ routes: [{ path: '/admin', methods: ['GET', 'POST'], require: { roles: ['admin', 'root'], scope: 'write', level: 3 } }, { path: '/open' }] }), WITH_AUTH)
    const admin = route(service(loaded, 'billing'), '/admin')
    // HEAD comes with GET (RFC 9110 §9.3.2), as on the gateway's own routes.
    expect([...admin.methods!]).toEqual(['GET', 'POST', 'HEAD'])
    expect(admin.require).toEqual([
      { claim: 'roles', values: ['admin', 'root'] },
      { claim: 'scope', values: ['write'] },
      { claim: 'level', values: [3] },
    ])
    const open = route(service(loaded, 'billing'), '/open')
    expect(open.methods).toBeNull()
    expect(open.require).toEqual([])
  })
})

describe('the process: start, --config and --check', () => {
  test('a start with GATEWAY_CONFIG naming a bad file exits 1 with one stderr line naming the file and the key path, no stack trace', async () => {
    const path = policyFile(TYPO_IN_BILLING)
    const port = await closedPort()
    const line = oneLineRefusal(await run([], { GATEWAY_CONFIG: path, PORT: String(port), HOST: '127.0.0.1' }))
    expect(line).toStartWith(`api-gateway: ${path}: services.billing.routes[0].methods[1]: `)
    expect(line).toContain('GET')
  })

  test('--config <path> (and --config=<path>) does what GATEWAY_CONFIG does', async () => {
    const path = policyFile(TYPO_IN_BILLING)
    const port = String(await closedPort())
    const [viaEnvironment, viaArgument, viaEquals] = await Promise.all([
      run([], { GATEWAY_CONFIG: path, PORT: port, HOST: '127.0.0.1' }),
      run(['--config', path], { PORT: port, HOST: '127.0.0.1' }),
      run([`--config=${path}`], { PORT: port, HOST: '127.0.0.1' }),
    ])
    const expected = oneLineRefusal(viaEnvironment)
    expect(oneLineRefusal(viaArgument)).toBe(expected)
    expect(oneLineRefusal(viaEquals)).toBe(expected)
    // --config wins over GATEWAY_CONFIG.
    const good = policyFile(billingDocument({}))
    expect(oneLineRefusal(await run(['--config', path], { GATEWAY_CONFIG: good, PORT: port, HOST: '127.0.0.1' }))).toBe(expected)
  })

  test('--config with no value exits 1 with one line', async () => {
    const line = oneLineRefusal(await run(['--config'], {}))
    expect(line).toStartWith('api-gateway: ')
    expect(line).toContain('--config')
  })

  test('an unreadable policy file stops the start with one line naming its path', async () => {
    const missing = join(directory, 'missing.yaml')
    const line = oneLineRefusal(await run([], { GATEWAY_CONFIG: missing, PORT: String(await closedPort()) }))
    expect(line).toStartWith(`api-gateway: ${missing}: `)
    expect(line).toContain('cannot read')
  })

  test("--check with a valid file whose services are reachable exits 0 and prints each service's effective policy", async () => {
    const path = policyFile(`
services:
  billing:
    url: ${backend.url}/v2
    timeout_ms: 5000
    rate_limit: { rate: 600, burst: 100, key: subject }
    routes:
      - path: /admin
        methods: [GET, POST]
        require: { roles: admin }
      - path: /public
        auth: off
        rate_limit: { rate: 60, burst: 10 }
  shop:
    url: [${backend.url}, ${backend.url}/b]
    case_sensitive: false
`)
    const env: Env = { ...Object.fromEntries(BUILT_IN.map((name) => [`${name}_URL`, backend.url])), ...WITH_AUTH, GATEWAY_CONFIG: path, PORT: String(await closedPort()) }
    const result = await run(['--check'], env)
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain('"policies"')
    expect(result.stdout).toContain(`ok    GATEWAY_CONFIG ${path}`)
    const settings = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'), result.stdout.indexOf('\n}\n') + 2)) as { policy_file: string; policies: Record<string, Record<string, unknown>> }
    expect(settings.policy_file).toBe(path)
    expect(Object.keys(settings.policies).sort()).toEqual(['billing', 'fanout', 'hitl', 'orchestrator', 'parser', 'runner', 'shop'])
    expect(settings.policies.billing).toMatchObject({
      url: `${backend.url}/v2`,
      timeout_ms: 5000,
      auth: 'required',
      rate_limit: { rate: 600, burst: 100, key: 'subject', buckets: 'service:billing' },
      routes: [
        // HEAD comes with GET (RFC 9110 §9.3.2), as on the gateway's own routes.
        { path: '/admin', methods: ['GET', 'POST', 'HEAD'], require: { roles: 'admin' }, auth: 'required', rate_limit: { buckets: 'service:billing' } },
        { path: '/public', auth: 'off', rate_limit: { rate: 60, burst: 10, key: 'ip', buckets: 'route:billing:/public' } },
      ],
    })
    expect(settings.policies.shop).toMatchObject({ case_sensitive: false, url: `${backend.url},${backend.url}/b`, rate_limit: { buckets: 'global' } })
    expect(settings.policies.runner).toMatchObject({ timeout_ms: 30_000, auth: 'required', routes: [] })
    // Every instance of the file's services is probed.
    expect(result.stdout).toContain(`ok    service shop ${backend.url}/b`)
  })

  test('--check with an invalid file exits 1 and prints the same message as the start', async () => {
    const path = policyFile(TYPO_IN_BILLING)
    const env: Env = { ...Object.fromEntries(BUILT_IN.map((name) => [`${name}_URL`, backend.url])), GATEWAY_CONFIG: path, PORT: String(await closedPort()), HOST: '127.0.0.1' }
    const [check, start] = await Promise.all([run(['--check'], env), run([], env)])
    const startLine = oneLineRefusal(start)
    const message = startLine.slice('api-gateway: '.length)
    expect(message).toStartWith(`${path}: services.billing.routes[0].methods[1]: `)
    expect(check.exitCode).toBe(1)
    expect(check.stdout).toContain(message)
    expect(check.stdout).toMatch(/^FAIL .*services\.billing\.routes\[0\]\.methods\[1\]/m)
    expect(check.stdout).not.toContain('"policies"')
  })

  test("a start with a valid file whose service URL is also set by <NAME>_URL logs once that the environment's URL replaces the file's", async () => {
    const unused = await closedPort()
    const path = policyFile(`services:\n  billing:\n    url: http://127.0.0.1:${unused}\n    timeout_ms: 5000\n  shop:\n    url: ${backend.url}\n`)
    const gateway = await startGatewayProcess({ GATEWAY_CONFIG: path, BILLING_URL: backend.url })
    try {
      // The environment's URL is the one requests go to.
      const response = await fetch(`${gateway.url}/api/v1/billing/from-env`)
      expect(response.status).toBe(200)
      expect(backend.seen.some((seen) => seen.target === '/from-env')).toBe(true)
      // Log lines are written in batches: wait for the proxied request's own line.
      expect(await waitFor(() => gateway.logs.some((line) => line.msg === 'Proxied request'))).toBe(true)
      const replaced = gateway.logs.filter((line) => line.msg === "Service URLs from the environment (<NAME>_URL) replace the policy file's")
      expect(replaced).toHaveLength(1)
      expect(replaced[0]!.level).toBe('info')
      expect(replaced[0]!.services).toEqual(['billing'])
      const listening = gateway.logs.find((line) => line.msg === 'api-gateway listening')
      expect(listening?.policy_file).toBe(path)
      expect((listening?.services as Record<string, string>).billing).toBe(backend.url)
    } finally {
      await gateway.kill('SIGTERM')
    }
  })
})

describe('the compiled binary', () => {
  beforeAll(() => {
    const build = Bun.spawnSync(['bun', `${ROOT}scripts/build.ts`, '--if-stale'], { cwd: ROOT, stderr: 'pipe' })
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr}`)
  }, 120_000)

  test('refuses a bad policy file as the source does: exit 1, one stderr line naming the file and the key path', async () => {
    const path = policyFile(TYPO_IN_BILLING)
    const port = String(await closedPort())
    const [binary, source, binaryWithArgument] = await Promise.all([
      run([], { GATEWAY_CONFIG: path, PORT: port, HOST: '127.0.0.1' }, [BINARY]),
      run([], { GATEWAY_CONFIG: path, PORT: port, HOST: '127.0.0.1' }),
      run(['--config', path], { PORT: port, HOST: '127.0.0.1' }, [BINARY]),
    ])
    const line = oneLineRefusal(binary)
    expect(line).toStartWith(`api-gateway: ${path}: services.billing.routes[0].methods[1]: `)
    expect(line).toBe(oneLineRefusal(source))
    expect(oneLineRefusal(binaryWithArgument)).toBe(line)
  })
})
