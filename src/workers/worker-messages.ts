/**
 * What the supervisor and its workers say to each other over Bun's IPC channel (README,
 * "Workers"): what `/metrics` needs to report every worker, and the policy file the supervisor
 * validated, so every worker runs the same policies. Everything else a worker needs is in Redis.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client'

/** The environment variable that makes a process a worker, and tells it its id (1..N). */
export const WORKER_ID_VARIABLE = 'API_GATEWAY_WORKER_ID'
/** The supervisor's pid, given to each worker: its parent from its very first instruction. */
export const SUPERVISOR_PID_VARIABLE = 'API_GATEWAY_SUPERVISOR_PID'

/**
 * This process's worker id, or undefined when it is not a worker.
 * @example workerIdOf({ API_GATEWAY_WORKER_ID: '2' }) // 2
 */
export function workerIdOf(env: Readonly<Record<string, string | undefined>>): number | undefined {
  const id = Number(env[WORKER_ID_VARIABLE])
  return Number.isInteger(id) && id > 0 ? id : undefined
}

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[]

export type WorkerMessage =
  /** A worker is up and listening to its supervisor (which then hands it the policies in use). */
  | { type: 'started' }
  /** A worker was scraped: it asks for every worker's figures, summed. */
  | { type: 'scrape'; id: number }
  /** A worker's own figures, answering `snapshot`. */
  | { type: 'snapshot'; id: number; metrics: MetricsSnapshot }

export type SupervisorMessage =
  /** Send your figures. */
  | { type: 'snapshot'; id: number }
  /** Run these policies: the text of the policy file as the supervisor validated it (start or reload). */
  | { type: 'policies'; text: string }
  /** The summed exposition, answering `scrape`. */
  | { type: 'exposition'; id: number; text: string; contentType: string }
