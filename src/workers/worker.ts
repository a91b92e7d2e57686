/**
 * A worker's side of `WORKERS` above 1 (README, "Workers"): it answers the supervisor's
 * requests for its figures, asks the supervisor for everyone's when it is scraped, and ends
 * itself when the supervisor is gone (no worker outlives the process the operator manages).
 */
import type { Metrics } from '../ops/metrics'
import { type MetricsSnapshot, SUPERVISOR_PID_VARIABLE, type SupervisorMessage, type WorkerMessage } from './worker-messages'

/** Figures that describe one process, reported per worker (a `worker` label) instead of summed. */
const PER_PROCESS = /^(process_|nodejs_|gateway_redis_connected$|gateway_upstream_healthy$)/
/** A scrape waits this long for the supervisor before answering with this worker's figures alone. */
const SCRAPE_TIMEOUT_MS = 3_000
/** How often a worker checks that its supervisor is still there. */
const SUPERVISOR_CHECK_MS = 1_000

export class WorkerLink {
  private nextScrapeId = 1
  private readonly scrapes = new Map<number, (answer: { text: string; contentType: string }) => void>()
  /** Given by the supervisor in this worker's environment: read from the parent later, a supervisor that died first would go unnoticed. */
  private readonly supervisorPid = Number(process.env[SUPERVISOR_PID_VARIABLE] ?? process.ppid)
  private policyListener: ((text: string) => void) | undefined
  /** Policies that came before a listener was registered. */
  private unheardPolicies: string | undefined

  constructor(
    readonly id: number,
    private readonly metrics: Metrics,
  ) {
    process.on('message', (message: SupervisorMessage) => void this.received(message))
    this.send({ type: 'started' })
  }

  /** Registers the one listener given the supervisor's policy file text (at start, and on every reload). */
  onPolicies(listener: (text: string) => void): void {
    this.policyListener = listener
    if (this.unheardPolicies !== undefined) listener(this.unheardPolicies)
    this.unheardPolicies = undefined
  }

  /**
   * `GET /metrics` on a worker: every worker's figures, summed by the supervisor.
   * @example new WorkerLink(1, metrics).exposition()
   */
  async exposition(): Promise<Response> {
    const id = this.nextScrapeId++
    const answer = await new Promise<{ text: string; contentType: string } | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.scrapes.delete(id)
        resolve(undefined)
      }, SCRAPE_TIMEOUT_MS)
      this.scrapes.set(id, (reply) => {
        clearTimeout(timer)
        this.scrapes.delete(id)
        resolve(reply)
      })
      this.send({ type: 'scrape', id })
    })
    // The supervisor did not answer (it is stopping): no figures rather than partial ones, which a
    // scraper would read as counters going down.
    if (answer === undefined) return new Response('metrics unavailable: the supervisor did not answer\n', { status: 503, headers: { 'content-type': 'text/plain' } })
    return new Response(answer.text, { headers: { 'content-type': answer.contentType } })
  }

  /** Calls `onGone` once the supervisor has gone away (this process was handed to another parent). */
  watchSupervisor(onGone: () => void): void {
    const check = () => {
      if (process.ppid === this.supervisorPid) return false
      clearInterval(timer)
      onGone()
      return true
    }
    const timer = setInterval(check, SUPERVISOR_CHECK_MS)
    timer.unref()
    check()
  }

  private async received(message: SupervisorMessage): Promise<void> {
    if (message.type === 'exposition') {
      this.scrapes.get(message.id)?.({ text: message.text, contentType: message.contentType })
      return
    }
    if (message.type === 'policies') {
      if (this.policyListener === undefined) this.unheardPolicies = message.text
      else this.policyListener(message.text)
      return
    }
    if (message.type === 'snapshot') this.send({ type: 'snapshot', id: message.id, metrics: await this.snapshot() })
  }

  /** This worker's figures, per-process ones labelled with its id. */
  private async snapshot(): Promise<MetricsSnapshot> {
    const metrics = (await this.metrics.registry.getMetricsAsJSON()) as MetricsSnapshot
    for (const metric of metrics) {
      if (!PER_PROCESS.test(metric.name)) continue
      // Kept apart by the label; `first` per label set (prom-client would omit some, such as the start time).
      ;(metric as { aggregator: string }).aggregator = 'first'
      for (const value of metric.values) value.labels = { ...value.labels, worker: this.id }
    }
    return metrics
  }

  private send(message: WorkerMessage): void {
    try {
      process.send?.(message)
    } catch {
      // The supervisor is gone; watchSupervisor ends this worker.
    }
  }
}
