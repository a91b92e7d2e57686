/**
 * `WORKERS` above 1 (README, "Workers"): the process the operator started supervises N worker
 * processes, each a whole gateway listening on the same port with `SO_REUSEPORT`, so the
 * kernel spreads connections over every core. The supervisor serves nothing and holds no
 * listening socket; workers share their state through Redis, as cluster members.
 *
 * - A worker that dies is started again: within 1 s after a long life, with a delay doubling
 *   up to 30 s while it keeps dying within 10 s of its start; the fifth such death in a row
 *   stops every worker and the supervisor exits 1 (a broken setting, not a restart loop).
 * - SIGTERM/SIGINT: every worker drains; after 12 s those left are killed; exit 0.
 * - `/metrics` on any worker asks the supervisor, which gathers every worker's figures over
 *   IPC and sums them (prom-client's `AggregatorRegistry`), keeping a dead worker's last counts
 *   so that sums never go down.
 * - SIGHUP: the supervisor validates the policy file once and hands its text to every worker
 *   (and to each worker it starts later), so all run one policy set; the reload is logged and
 *   counted once, here.
 */
import type { Subprocess } from 'bun'
import { AggregatorRegistry, Registry } from 'prom-client'
import type { Logger } from '../ops/log'
import { type MetricsSnapshot, SUPERVISOR_PID_VARIABLE, type SupervisorMessage, WORKER_ID_VARIABLE, type WorkerMessage } from './worker-messages'

/** A worker that dies within this long of its start counts as a failed start. */
const QUICK_DEATH_MS = 10_000
/** Failed starts in a row that stop the gateway. */
const MAX_QUICK_DEATHS = 5
const FIRST_RESTART_DELAY_MS = 1_000
const MAX_RESTART_DELAY_MS = 30_000
/** Workers drain for up to 10 s (README, "Operations"); the supervisor waits a little longer. */
const STOP_GRACE_MS = 12_000
/** A worker that does not send its figures within this long is left out of one scrape. */
const SNAPSHOT_TIMEOUT_MS = 1_000

interface Slot {
  id: number
  child: Subprocess | undefined
  startedAt: number
  quickDeaths: number
  /** The last figures the worker sent: kept when it dies. */
  lastSnapshot: MetricsSnapshot | undefined
  restartTimer: Timer | undefined
}

export interface SupervisorOptions {
  workers: number
  /** The command that starts one gateway process (this binary, or `bun src/main.ts`). */
  command: string[]
  env: Record<string, string | undefined>
  logger: Logger
  /** Called once, when the supervisor must end the process (exit code). */
  exit(code: number): void
  /** The supervisor's own figures (the reload count), summed with the workers'. */
  registry?: Registry
}

export class Supervisor {
  private readonly slots: Slot[]
  private stopping = false
  private nextRequestId = 1
  private readonly pendingSnapshots = new Map<number, (snapshot: MetricsSnapshot) => void>()
  /** Counters and histograms of workers that died, never to be reported lower. */
  private retired: MetricsSnapshot[] = []
  /** The policy file every worker runs, as last validated; null without one. */
  private policyText: string | null = null

  constructor(private readonly options: SupervisorOptions) {
    this.slots = Array.from({ length: options.workers }, (_, i) => ({
      id: i + 1,
      child: undefined,
      startedAt: 0,
      quickDeaths: 0,
      lastSnapshot: undefined,
      restartTimer: undefined,
    }))
  }

  /** From now on every worker, running or started later, runs the policy file of `text`. */
  setPolicies(text: string): void {
    this.policyText = text
    for (const slot of this.slots) this.sendPolicies(slot)
  }

  /** Starts every worker. */
  start(): void {
    this.options.logger.info({ workers: this.slots.length }, 'Supervisor starting workers')
    for (const slot of this.slots) this.spawn(slot)
  }

  /** Drains every worker, kills those left after the grace period, and resolves when all are gone. */
  async stop(signal: 'SIGTERM' | 'SIGINT' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    this.stopping = true
    const running = this.slots.flatMap((slot) => {
      clearTimeout(slot.restartTimer)
      return slot.child === undefined ? [] : [slot.child]
    })
    for (const child of running) child.kill(signal === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM')
    const grace = setTimeout(() => {
      for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }, STOP_GRACE_MS)
    await Promise.all(running.map((child) => child.exited))
    clearTimeout(grace)
  }

  private spawn(slot: Slot): void {
    slot.restartTimer = undefined
    slot.startedAt = performance.now()
    let child: Subprocess
    try {
      child = Bun.spawn(this.options.command, {
        env: { ...this.options.env, [WORKER_ID_VARIABLE]: String(slot.id), [SUPERVISOR_PID_VARIABLE]: String(process.pid) },
        stdin: 'ignore',
        stdout: 'inherit',
        stderr: 'inherit',
        serialization: 'json',
        ipc: (message, subprocess) => this.received(slot, message as WorkerMessage, subprocess),
        onExit: (subprocess, exitCode, signalCode) => this.exited(slot, subprocess, exitCode, signalCode),
      })
    } catch (error) {
      // Could not even start (no processes left, the binary replaced under us): a failed start like any other.
      this.options.logger.error({ worker: slot.id, err: (error as Error).message }, 'Worker could not be started')
      this.failedStart(slot, null, null)
      return
    }
    slot.child = child
    this.options.logger.info({ worker: slot.id, pid: child.pid }, 'Worker started')
  }

  private exited(slot: Slot, child: Subprocess, exitCode: number | null, signalCode: number | string | null): void {
    if (slot.child !== child) return
    slot.child = undefined
    if (slot.lastSnapshot !== undefined) this.retired.push(countsOnly(slot.lastSnapshot))
    slot.lastSnapshot = undefined
    if (this.stopping) return
    this.failedStart(slot, exitCode, signalCode)
  }

  /** A worker ended (or never started): started again after its backoff, or the gateway stops. */
  private failedStart(slot: Slot, exitCode: number | null, signalCode: number | string | null): void {
    const lived = performance.now() - slot.startedAt
    slot.quickDeaths = lived < QUICK_DEATH_MS ? slot.quickDeaths + 1 : 0
    const { logger } = this.options
    if (slot.quickDeaths >= MAX_QUICK_DEATHS) {
      const line = `worker ${slot.id} died ${MAX_QUICK_DEATHS} times in a row within ${QUICK_DEATH_MS / 1000} s of its start (last exit: ${signalCode ?? exitCode}); stopping the gateway`
      logger.fatal({ worker: slot.id, exit_code: exitCode, signal: signalCode }, line)
      logger.flush()
      process.stderr.write(`api-gateway: ${line}\n`)
      void this.stop().then(() => this.options.exit(1))
      return
    }
    const delay = slot.quickDeaths === 0 ? 0 : Math.min(FIRST_RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1), MAX_RESTART_DELAY_MS)
    logger.warn({ worker: slot.id, exit_code: exitCode, signal: signalCode, lived_ms: Math.round(lived), restart_in_ms: delay }, 'Worker died: starting it again')
    slot.restartTimer = setTimeout(() => this.spawn(slot), delay)
  }

  private received(slot: Slot, message: WorkerMessage, subprocess: Subprocess): void {
    // A message from a worker this slot has already replaced counts for nothing.
    if (slot.child !== subprocess) return
    if (message.type === 'started') {
      this.sendPolicies(slot)
      return
    }
    if (message.type === 'snapshot') {
      slot.lastSnapshot = message.metrics
      this.pendingSnapshots.get(message.id)?.(message.metrics)
      return
    }
    if (message.type === 'scrape') {
      this.exposition()
        .then((answer) => {
          const reply: SupervisorMessage = { type: 'exposition', id: message.id, ...answer }
          if (slot.child === subprocess) subprocess.send(reply)
        })
        .catch((error: Error) => {
          // The worker went away meanwhile, or a figure could not be summed: its scrape times out (503).
          this.options.logger.warn({ worker: slot.id, err: error.message }, 'Metrics could not be gathered')
        })
    }
  }

  /** Every worker's figures summed, the retired ones included. */
  private async exposition(): Promise<{ text: string; contentType: string }> {
    const asked = this.slots.map((slot) => ({ slot, child: slot.child }))
    const answers = await Promise.all(asked.map(({ slot }) => this.snapshotOf(slot)))
    // A worker that died while the others answered is in `retired` now: counted there, not twice.
    const live = answers.filter((snapshot, i): snapshot is MetricsSnapshot => snapshot !== undefined && asked[i]!.slot.child === asked[i]!.child)
    if (this.retired.length > 1) this.retired = [await AggregatorRegistry.aggregate(this.retired).getMetricsAsJSON()] as MetricsSnapshot[]
    const own = this.options.registry === undefined ? [] : [(await this.options.registry.getMetricsAsJSON()) as MetricsSnapshot]
    const registry = AggregatorRegistry.aggregate([...live, ...this.retired, ...own])
    return { text: await registry.metrics(), contentType: registry.contentType }
  }

  private sendPolicies(slot: Slot): void {
    if (this.policyText === null || slot.child === undefined) return
    try {
      slot.child.send({ type: 'policies', text: this.policyText } satisfies SupervisorMessage)
    } catch {
      // Going away: the worker started next asks again.
    }
  }

  /** A worker's current figures; its last ones when it does not answer in time. */
  private snapshotOf(slot: Slot): Promise<MetricsSnapshot | undefined> {
    const child = slot.child
    if (child === undefined) return Promise.resolve(undefined)
    const id = this.nextRequestId++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingSnapshots.delete(id)
        resolve(slot.lastSnapshot)
      }, SNAPSHOT_TIMEOUT_MS)
      this.pendingSnapshots.set(id, (snapshot) => {
        clearTimeout(timer)
        this.pendingSnapshots.delete(id)
        resolve(snapshot)
      })
      try {
        child.send({ type: 'snapshot', id } satisfies SupervisorMessage)
      } catch {
        // The worker is going away; its last figures stand in.
      }
    })
  }
}

/** What of a dead worker's figures still counts: counters and histograms, not gauges or per-process figures. */
function countsOnly(snapshot: MetricsSnapshot): MetricsSnapshot {
  return snapshot.filter((metric) => {
    const type = String(metric.type)
    return (type === 'counter' || type === 'histogram') && !metric.values.some((value) => 'worker' in value.labels)
  })
}
