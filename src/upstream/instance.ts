/**
 * One instance of a backend service (README, "Instances"): where it is, how many requests it
 * has in flight (for balancing), and its passive health (for ejection, `passive-health.ts`).
 */
import type { InstanceTarget } from '../config/settings'

export class Instance {
  /** Requests sent to it whose response body has not ended yet. */
  inFlight = 0
  /** Failures in a row (connect, TLS, reset, timeout, or a 502/503/504 from it). */
  consecutiveFailures = 0
  /** `performance.now()` until which it is ejected; 0 while it is in rotation. */
  ejectedUntil = 0
  /** Ejected, cooled down, and its one probe request is in flight. */
  probing = false
  /** A reload took it out of its service: its health is no longer reported. */
  retired = false

  constructor(
    readonly service: string,
    readonly target: InstanceTarget,
  ) {}

  get url(): string {
    return this.target.url
  }

  get ejected(): boolean {
    return this.ejectedUntil !== 0
  }
}
