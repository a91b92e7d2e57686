/**
 * Entry point: arguments → config and policies → supervisor (WORKERS above 1) or gateway →
 * listen → signals. `--check` and `--healthcheck` only read the settings and exit.
 */
import { Registry } from 'prom-client'
import { createGateway } from './app'
import { type PolicySet, changesBetween } from './config/policies'
import { type LoadedPolicies, loadPolicies } from './config/policy-file'
import { type Config, ConfigError, helpText, loadConfig } from './config/settings'
import { answersHealth } from './ops/healthcheck'
import { type Logger, createLogger } from './ops/log'
import { configReloadsCounter } from './ops/metrics'
import { startDemo } from './demo/demo'
import { applyQuietly, reload } from './ops/reload'
import { checkReport } from './ops/settings-check'
import { VERSION } from './ops/version'
import { Supervisor } from './workers/supervisor'
import { workerIdOf } from './workers/worker-messages'

/** How long a worker waits for its supervisor's policies before it gives up (and is started again). */
const POLICIES_WAIT_MS = 10_000

/** The commands besides serving; settings are environment variables (`--help`). `demo` serves, with its own services. */
const COMMANDS = ['--check', '--healthcheck', 'demo'] as const

interface Arguments {
  command: (typeof COMMANDS)[number] | undefined
  /** `--config <path>`: the policy file, as `GATEWAY_CONFIG` would name it. */
  policyFile: string | undefined
}

/** `make()`, or the end of the start with one line when a setting is wrong (README, "Configuration"). */
function orExit<T>(make: () => T): T {
  try {
    return make()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`api-gateway: ${error.message}\n`)
    process.exit(1)
  }
}

/** The command line, or one line on stderr and exit 1. */
function parseArguments(args: string[]): Arguments {
  const parsed: Arguments = { command: undefined, policyFile: undefined }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--config' || arg.startsWith('--config=')) {
      const value = arg === '--config' ? args[++i] : arg.slice('--config='.length)
      if (!value) throw new ConfigError('--config needs the path of a policy file: --config /etc/api-gateway/policies.yaml')
      parsed.policyFile = value
    } else if ((COMMANDS as readonly string[]).includes(arg) && parsed.command === undefined) {
      parsed.command = arg as Arguments['command']
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; settings are environment variables (see --help)`)
    }
  }
  return parsed
}

const rawArgs = process.argv.slice(2)
if (rawArgs.includes('--help') || rawArgs.includes('-h')) {
  process.stdout.write(helpText(VERSION))
  process.exit(0)
}
if (rawArgs.includes('--version') || rawArgs.includes('-v')) {
  process.stdout.write(`${VERSION}\n`)
  process.exit(0)
}
const args = orExit(() => parseArguments(rawArgs))
// `--config` is `GATEWAY_CONFIG` for this process and for the workers it starts.
const given = args.policyFile === undefined ? process.env : { ...process.env, GATEWAY_CONFIG: args.policyFile }
// The demo's own services listen before the settings are read: their URLs are settings.
const demo = args.command === 'demo' ? startDemo(given, (message, fields) => process.stderr.write(`api-gateway demo: ${message} ${JSON.stringify(fields)}\n`)) : null
const environment = demo?.environment ?? given
const config = orExit(() => loadConfig(environment))
if (demo !== null && config.workers > 1) {
  process.stderr.write('api-gateway: the demo runs as one process; unset WORKERS\n')
  process.exit(1)
}

if (args.command === '--check') {
  const report = await checkReport(config, VERSION)
  process.stdout.write(report.text)
  process.exit(report.ok ? 0 : 1)
}
if (args.command === '--healthcheck') process.exit((await answersHealth(config)) ? 0 : 1)

const workerId = workerIdOf(environment)
// A worker never reads the policy file: it runs what its supervisor validated, handed over IPC
// before it listens (a file edited since, without a reload, must not reach it).
const loaded = workerId === undefined ? orExit(() => loadPolicies(config, config.policyFile)) : loadPolicies(config, null)
const logger = createLogger(config.logLevel, undefined, workerId)
// Log lines are written in batches: whatever waits goes out before the process ends.
process.on('exit', () => logger.flush())
if (loaded.urlsFromEnvironment.length > 0 && workerId === undefined) {
  logger.info({ services: loaded.urlsFromEnvironment }, "Service URLs from the environment (<NAME>_URL) replace the policy file's")
}

if (config.workers > 1 && workerId === undefined) superviseWorkers(loaded)
else await serve(loaded.policies)

/** `WORKERS` above 1: this process starts the workers and watches them, serving nothing itself. */
function superviseWorkers(start: LoadedPolicies): void {
  const registry = new Registry()
  const reloads = configReloadsCounter(registry)
  const supervisor = new Supervisor({
    workers: config.workers,
    command: workerCommand(),
    env: environment,
    logger,
    registry,
    exit: (code) => {
      logger.flush()
      process.exit(code)
    },
  })
  let current: PolicySet = start.policies
  if (start.text !== null) supervisor.setPolicies(start.text)
  supervisor.start()
  // Validated once here, logged and counted once; every worker gets the same text.
  process.on('SIGHUP', () => {
    reload({ config, logger, reloads }, (next) => {
      const changes = changesBetween(current, next.policies)
      current = next.policies
      supervisor.setPolicies(next.text!)
      return changes
    })
  })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, async () => {
      logger.info({ signal }, 'Supervisor stopping: draining every worker')
      await supervisor.stop()
      logger.info('Supervisor stopped')
      logger.flush()
      process.exit(0)
    })
  }
}

/** The command that starts this same gateway again: the compiled binary alone, or `bun src/main.ts`. */
function workerCommand(): string[] {
  // In a compiled binary the entry point lives in Bun's embedded file system.
  return Bun.main.startsWith('/$bunfs/') ? [process.execPath] : [process.execPath, Bun.main]
}

/** One gateway process: alone, or one of the workers. */
async function serve(policies: PolicySet): Promise<void> {
  // The TLS files are read here: a wrong one stops the start like a wrong setting.
  const gateway = orExit(() => createGateway({ config, logger, workerId, policies, consolePage: demo?.consolePage }))
  const worker = gateway.worker
  if (worker !== null && config.policyFile !== null) {
    // The supervisor validates, logs and counts; a worker applies what it is handed, first before it listens.
    const first = Promise.withResolvers<void>()
    worker.onPolicies((text) => {
      applyQuietly(config, config.policyFile!, text, logger, (next) => gateway.applyPolicies(next))
      first.resolve()
    })
    const timer = setTimeout(() => {
      process.stderr.write(`api-gateway: worker ${worker.id} got no policies from its supervisor within ${POLICIES_WAIT_MS / 1000} s\n`)
      process.exit(1)
    }, POLICIES_WAIT_MS)
    await first.promise
    clearTimeout(timer)
  }
  let server
  try {
    server = gateway.listen()
  } catch (error) {
    process.stderr.write(`api-gateway: cannot listen on ${config.host}:${config.port}: ${(error as Error).message}\n`)
    process.exit(1)
  }
  logStart(config, logger, gateway.policies, server.port ?? config.port)
  // One line for the person who ran the demo, beside the JSON log on stdout.
  if (demo !== null) process.stderr.write(`${demo.listening(config, server.port ?? config.port)}\n`)

  if (worker === null) {
    process.on('SIGHUP', () => void reload({ config, logger, reloads: gateway.metrics.configReloads }, (next) => gateway.applyPolicies(next.policies)))
  } else {
    process.on('SIGHUP', () => logger.debug('SIGHUP ignored by a worker: the supervisor reloads the policies'))
  }

  let stopping = false
  const stop = async (reason: string) => {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'Shutting down: draining in-flight requests')
    const drained = await gateway.shutdown()
    demo?.stop()
    logger.info({ drained }, 'Stopped')
    logger.flush()
    process.exit(0)
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(signal))
  // A worker never outlives its supervisor: it drains, and is gone after 12 s whatever happens.
  worker?.watchSupervisor(() => {
    setTimeout(() => process.exit(1), 12_000).unref()
    void stop('supervisor gone')
  })
}

function logStart(config: Config, logger: Logger, policies: PolicySet, port: number): void {
  logger.info(
    {
      version: VERSION,
      // The binary is built with NODE_ENV=production.
      mode: process.env.NODE_ENV ?? 'development',
      host: config.host,
      port,
      services: Object.fromEntries([...policies.services].map(([name, service]) => [name, service.url])),
      policy_file: config.policyFile ?? undefined,
      rate_limit: config.rateLimit,
      // Never the URL itself: it may carry a password.
      cluster_mode: config.redisUrl !== null,
      authentication: config.auth === null ? 'off' : config.auth.jwtSecret !== null ? 'hs256' : 'jwks',
      tls: config.tls !== null,
    },
    'api-gateway listening',
  )
}
