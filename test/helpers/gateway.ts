/** Starts real gateways (in-process or the compiled binary) on free ports, and cleans them up. */
import { createGateway, type Gateway } from '../../src/app'
import { loadPolicies } from '../../src/config/policy-file'
import { loadConfig } from '../../src/config/settings'
import { createLogger } from '../../src/ops/log'

export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

export interface RunningGateway {
  url: string
  port: number
  gateway: Gateway
  /** Every JSON line the gateway logged, parsed. */
  logs: LogLine[]
  /** Every line as written, to prove what was never logged. */
  rawLogs: string[]
  stop(): Promise<void>
}

/**
 * An in-process gateway on 127.0.0.1 and a free port, configured by `env` exactly as the binary would be.
 * @example const gw = await startGateway({ ORCHESTRATOR_URL: backend.url })
 */
export async function startGateway(env: Record<string, string> = {}): Promise<RunningGateway> {
  const config = loadConfig({ HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env })
  const logs: LogLine[] = []
  const rawLogs: string[] = []
  const logger = createLogger(config.logLevel, {
    write(line: string) {
      rawLogs.push(line)
      logs.push(JSON.parse(line) as LogLine)
    },
  })
  // As main.ts does: the policy file of GATEWAY_CONFIG, when there is one.
  const gateway = createGateway({ config, logger, policies: loadPolicies(config, config.policyFile).policies })
  const server = gateway.listen(0)
  const port = server.port!
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    gateway,
    logs,
    rawLogs,
    async stop() {
      await gateway.shutdown(100)
    },
  }
}

/** Event streams open on `gateway`, as its `gateway_sse_connections` gauge reports them. */
export async function openStreams(gateway: Gateway): Promise<number> {
  return (await gateway.metrics.sseConnections.get()).values[0]?.value ?? 0
}

/** WebSocket sessions open on `gateway`, as its `gateway_websocket_sessions` gauge reports them. */
export async function openWebSocketSessions(gateway: Gateway): Promise<number> {
  return (await gateway.metrics.websocketSessions.get()).values[0]?.value ?? 0
}
