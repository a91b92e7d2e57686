/**
 * `api-gateway demo` (README, "Demo"): the gateway with two services of its own on free
 * loopback ports, registered like any other (`ECHO_URL`, `AGENT_URL`, and the agent as
 * `HITL_URL`) and stopped with it, and its console page at `/`. Every other setting applies as
 * usual; the gateway listens on 127.0.0.1 unless `HOST` is set.
 */
import type { Config } from '../config/settings'
import { type AgentService, startAgentService } from './agent-service'
import { consoleHandler } from './console'
import { startEchoService } from './echo-service'

export interface Demo {
  /** The environment the gateway starts with: the caller's, the demo's services, and its HOST default. */
  environment: Record<string, string | undefined>
  consolePage: () => Response
  /** Once the gateway listens: the agent publishes to it, and the line to print (the console's URL). */
  listening(config: Config, port: number): string
  stop(): void
}

/** @example const demo = startDemo(process.env, (msg, fields) => logger.warn(fields, msg)) */
export function startDemo(environment: Record<string, string | undefined>, warn: (message: string, fields: object) => void): Demo {
  const echo = startEchoService()
  const agent: AgentService = startAgentService(warn)
  return {
    environment: { HOST: '127.0.0.1', ...environment, ECHO_URL: echo.url, AGENT_URL: agent.url, HITL_URL: agent.url },
    consolePage: consoleHandler({ dashboard: null }),
    listening(config, port) {
      const scheme = config.tls === null ? 'http' : 'https'
      const url = `${scheme}://${reachableHost(config.host)}:${port}`
      agent.connect(url, config.events.publishToken, config.events.hitlResponsePath)
      return `api-gateway demo: open ${url}/ (services echo ${echo.url} and agent ${agent.url}, on this host only)`
    },
    stop() {
      void echo.server.stop(true)
      agent.stop()
    },
  }
}

/** Where this host reaches the gateway: a wildcard address means loopback. */
function reachableHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}
