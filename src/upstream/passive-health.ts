/**
 * Passive health, Envoy's outlier detection (README, "Instances"): `CIRCUIT_FAILURES`
 * consecutive failures eject an instance for `CIRCUIT_COOLDOWN_MS`; then one probe request is
 * let through. Its success restores the instance, its failure ejects it again. A service with a
 * single instance is watched the same way, so a dead backend is answered 503 at once instead of
 * making every client wait for its failure.
 */
import type { Logger } from '../log'
import type { Metrics } from '../ops/metrics'
import type { Instance } from './instance'

/** RFC 9110 §15.6: what a backend says when it cannot serve, counted as failures of the instance. */
const FAILING_STATUSES: ReadonlySet<number> = new Set([502, 503, 504])

export interface PassiveHealthSettings {
  /** Consecutive failures that eject; 0 disables ejection. */
  failures: number
  cooldownMs: number
}

export class PassiveHealth {
  constructor(
    private readonly settings: PassiveHealthSettings,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Puts `instance` in the healthy gauge at start. */
  register(instance: Instance): void {
    this.metrics.upstreamHealthy.set({ service: instance.service, instance: instance.url }, 1)
  }

  /**
   * May a request go to `instance` now? An ejected instance whose cooldown has passed takes one
   * request, its probe: this call reserves it.
   * @returns 'no', 'yes', or 'probe' for the one request that decides an ejected instance's fate.
   */
  admit(instance: Instance, now: number): 'no' | 'yes' | 'probe' {
    if (!instance.ejected) return 'yes'
    if (instance.probing || now < instance.ejectedUntil) return 'no'
    instance.probing = true
    return 'probe'
  }

  /** A probe ended without a verdict on the instance (its client left, its body was too large): the next request probes. */
  release(instance: Instance): void {
    instance.probing = false
  }

  /**
   * The instance answered: a 502/503/504 counts as a failure, anything else as a success.
   * @param probe whether this was the instance's probe.
   */
  answered(instance: Instance, status: number, probe: boolean): void {
    if (FAILING_STATUSES.has(status)) this.failed(instance, probe)
    else this.succeeded(instance)
  }

  succeeded(instance: Instance): void {
    instance.consecutiveFailures = 0
    if (!instance.ejected) return
    instance.ejectedUntil = 0
    instance.probing = false
    this.metrics.upstreamHealthy.set({ service: instance.service, instance: instance.url }, 1)
    this.logger.info({ service: instance.service, instance: instance.url }, 'Upstream instance restored: its probe request succeeded')
  }

  /** @param probe whether this was the instance's probe: its failure ejects the instance again. */
  failed(instance: Instance, probe: boolean): void {
    instance.consecutiveFailures++
    if (probe) {
      // Ejected again, quietly: the outage was logged once, when it began.
      instance.probing = false
      instance.ejectedUntil = performance.now() + this.settings.cooldownMs
      return
    }
    // An older request failing while the instance is out changes nothing (its probe decides).
    if (this.settings.failures === 0 || instance.ejected || instance.consecutiveFailures < this.settings.failures) return
    instance.ejectedUntil = performance.now() + this.settings.cooldownMs
    this.metrics.upstreamEjections.inc({ service: instance.service, instance: instance.url })
    this.metrics.upstreamHealthy.set({ service: instance.service, instance: instance.url }, 0)
    this.logger.warn(
      { service: instance.service, instance: instance.url, consecutive_failures: instance.consecutiveFailures, cooldown_ms: this.settings.cooldownMs },
      'Upstream instance ejected after consecutive failures',
    )
  }

  /**
   * Whole seconds until the next probe of any of `instances`, at least 1 (`Retry-After` of the
   * 503 while all are ejected).
   */
  retryAfterSeconds(instances: readonly Instance[], now: number): number {
    let soonest = Number.POSITIVE_INFINITY
    for (const instance of instances) soonest = Math.min(soonest, instance.probing ? now : instance.ejectedUntil)
    return Math.max(1, Math.ceil((soonest - now) / 1000))
  }
}
