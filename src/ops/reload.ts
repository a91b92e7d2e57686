/**
 * Reloading the policy file on `SIGHUP` (README, "Policies", reload): read it again (the
 * environment is not read again), validate it as the start does, and either swap the new
 * policy set in whole or change nothing. Each reload writes one log line and counts once in
 * `gateway_config_reloads_total{outcome}`; under `WORKERS` the supervisor does both, once, and
 * hands the validated file to every worker (`applyQuietly`).
 */
import type { Counter } from 'prom-client'
import type { PolicyChanges, PolicySet } from '../config/policies'
import { type LoadedPolicies, loadPolicies, policiesOfText } from '../config/policy-file'
import { type Config, ConfigError } from '../config/settings'
import type { Logger } from './log'

export interface ReloadParts {
  config: Config
  logger: Logger
  /** `gateway_config_reloads_total`. */
  reloads: Counter<'outcome'>
}

/**
 * One `SIGHUP`: the file read and validated again, then `apply` given the new set; a file that
 * fails changes nothing. Without a policy file the signal is logged and ignored.
 * @returns what was applied, or undefined when nothing was.
 */
export function reload({ config, logger, reloads }: ReloadParts, apply: (loaded: LoadedPolicies) => PolicyChanges): LoadedPolicies | undefined {
  const file = config.policyFile
  if (file === null) {
    logger.info('SIGHUP ignored: no policy file to reload (GATEWAY_CONFIG or --config)')
    return undefined
  }
  const started = performance.now()
  let loaded: LoadedPolicies
  try {
    loaded = loadPolicies(config, file)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    reloads.inc({ outcome: 'rejected' })
    logger.error({ file, err: error.message }, 'Configuration reload rejected: the policies in use are unchanged')
    return undefined
  }
  const changes = apply(loaded)
  reloads.inc({ outcome: 'applied' })
  // Read, validated, resolved and swapped in: what a reload costs, for the operator to see.
  logger.info({ file, ...changes, duration_ms: Math.round((performance.now() - started) * 10) / 10 }, 'Configuration reloaded')
  return loaded
}

/**
 * A worker given the supervisor's validated file: the set applied without a log line or a count
 * of its own (the supervisor wrote both). A text that no longer validates here (it did there) is
 * logged and changes nothing.
 */
export function applyQuietly(config: Config, file: string, text: string, logger: Logger, apply: (policies: PolicySet) => unknown): void {
  try {
    apply(policiesOfText(config, file, text).policies)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    logger.error({ file, err: error.message }, "The supervisor's policy file does not validate in this worker: the policies in use are unchanged")
  }
}
