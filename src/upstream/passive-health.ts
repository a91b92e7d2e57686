/**
 * Passive health, Envoy's outlier detection (README, "Instances"): `CIRCUIT_FAILURES`
 * consecutive failures eject an instance for `CIRCUIT_COOLDOWN_MS`; then one probe request is
 * let through. Its success restores the instance, its failure ejects it again. A service with a
 * single instance is watched the same way, so a dead backend is answered 503 at once instead of
 * making every client wait for its failure.
 *
 * A failure is what the gateway sees itself (connect, TLS, reset, timeout). A response counts
 * only when its status is listed in `CIRCUIT_STATUSES`, none by default, as nginx's
 * `max_fails` does: otherwise any client could eject a healthy instance for everyone by
 * requesting, again and again, a path where the backend itself answers 503.
 */
import type { CircuitPolicy } from '../config/policies'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import type { Instance } from './instance'

export class PassiveHealth {
  /** @param settings the service's circuit: `failures` in a row eject (0: never), for `cooldownMs`; `statuses` count as failures. */
  constructor(
    private readonly settings: CircuitPolicy,
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
   * The instance answered: a status listed in `CIRCUIT_STATUSES` counts as a failure, anything else as a success.
   * @param probe whether this was the instance's probe.
   */
  answered(instance: Instance, status: number, probe: boolean): void {
    if (this.settings.statuses.has(status)) this.failed(instance, probe)
    else this.succeeded(instance)
  }

  succeeded(instance: Instance): void {
    instance.consecutiveFailures = 0
    if (!instance.ejected || instance.retired) return
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
    // An older request failing while the instance is out changes nothing (its probe decides); a
    // request still in flight on an instance a reload removed reports nothing.
    if (this.settings.failures === 0 || instance.ejected || instance.retired || instance.consecutiveFailures < this.settings.failures) return
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
