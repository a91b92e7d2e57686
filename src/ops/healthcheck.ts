/**
 * `api-gateway --healthcheck` (README, "Operations"): does the gateway on this host answer
 * `/health`? Docker's `HEALTHCHECK` runs it, so the image needs no curl.
 */
import type { Config } from '../config/settings'

/**
 * @example if (!(await answersHealth(config))) process.exit(1)
 */
export async function answersHealth(config: Config): Promise<boolean> {
  const scheme = config.tls === null ? 'http' : 'https'
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host
  const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.port}/health`
  // Its certificate names the public host, not the loopback address it is asked on here.
  const response = await fetch(url, { signal: AbortSignal.timeout(3_000), tls: { rejectUnauthorized: false } }).catch(() => undefined)
  return response?.status === 200
}
