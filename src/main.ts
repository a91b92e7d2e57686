/**
 * Entry point: arguments → config → supervisor (WORKERS above 1) or gateway → listen → signals.
 * `--check` and `--healthcheck` only read the settings and exit.
 */
import { Supervisor } from './workers/supervisor'
import { workerIdOf } from './workers/worker-messages'
import { ConfigError, helpText, loadConfig } from './config/settings'
import { createGateway } from './app'
import { createLogger } from './ops/log'
import { answersHealth } from './ops/healthcheck'
import { checkReport } from './ops/settings-check'
import { VERSION } from './ops/version'

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(helpText(VERSION))
  process.exit(0)
}
if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write(`${VERSION}\n`)
  process.exit(0)
}
const COMMANDS = ['--check', '--healthcheck']
if (args.length > 1 || (args.length === 1 && !COMMANDS.includes(args[0]!))) {
  process.stderr.write(`api-gateway: unknown argument ${JSON.stringify(args[0])}; settings are environment variables (see --help)\n`)
  process.exit(1)
}

/** `make()`, or the end of the start with one line when a setting is wrong (README, "Configuration"). */
function orExitOnConfigError<T>(make: () => T): T {
  try {
    return make()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`api-gateway: ${error.message}\n`)
    process.exit(1)
  }
}

const config = orExitOnConfigError(() => loadConfig(process.env))

if (args[0] === '--check') {
  const report = await checkReport(config, VERSION)
  process.stdout.write(report.text)
  process.exit(report.ok ? 0 : 1)
}
if (args[0] === '--healthcheck') process.exit((await answersHealth(config)) ? 0 : 1)

const workerId = workerIdOf(process.env)
const logger = createLogger(config.logLevel, undefined, workerId)
// Log lines are written in batches: whatever waits goes out before the process ends.
process.on('exit', () => logger.flush())

if (config.workers > 1 && workerId === undefined) superviseWorkers()
else serve()

/** `WORKERS` above 1: this process starts the workers and watches them, serving nothing itself. */
function superviseWorkers(): void {
  const supervisor = new Supervisor({
    workers: config.workers,
    command: workerCommand(),
    env: process.env,
    logger,
    exit: (code) => {
      logger.flush()
      process.exit(code)
    },
  })
  supervisor.start()
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
function serve(): void {
  // The TLS files are read here: a wrong one stops the start like a wrong setting.
  const gateway = orExitOnConfigError(() => createGateway({ config, logger, workerId }))
  let server
  try {
    server = gateway.listen()
  } catch (error) {
    process.stderr.write(`api-gateway: cannot listen on ${config.host}:${config.port}: ${(error as Error).message}\n`)
    process.exit(1)
  }
  logger.info(
    {
      version: VERSION,
      // The binary is built with NODE_ENV=production, which also puts Elysia in production mode.
      mode: process.env.NODE_ENV ?? 'development',
      host: config.host,
      port: server.port,
      services: Object.fromEntries([...config.services].map(([name, service]) => [name, service.url])),
      rate_limit: config.rateLimit,
      // Never the URL itself: it may carry a password.
      cluster_mode: config.redisUrl !== null,
      authentication: config.auth === null ? 'off' : config.auth.jwtSecret !== null ? 'hs256' : 'jwks',
      tls: config.tls !== null,
    },
    'api-gateway listening',
  )

  let stopping = false
  const stop = async (reason: string) => {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'Shutting down: draining in-flight requests')
    const drained = await gateway.shutdown()
    logger.info({ drained }, 'Stopped')
    logger.flush()
    process.exit(0)
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(signal))
  // A worker never outlives its supervisor: it drains, and is gone after 12 s whatever happens.
  gateway.worker?.watchSupervisor(() => {
    setTimeout(() => process.exit(1), 12_000).unref()
    void stop('supervisor gone')
  })
}
