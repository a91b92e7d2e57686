/** A WebSocket session's ordering when the backend is faster than the client's upgrade. */
import { expect, test } from 'bun:test'
import type { ServerWebSocket } from 'bun'
import { CorsPolicy } from '../../src/http/cors'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { type SessionData, WebSocketBridge, WebSocketSession } from '../../src/proxy/websocket'

/** Stands in for Bun's client WebSocket: the test fires its events. */
class FakeBackendSocket {
  readyState = 1
  protocol = ''
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason: string }) => void) | null = null
  onerror: (() => void) | null = null
  closedWith: unknown[] | undefined
  send(): void {}
  close(...args: unknown[]): void {
    this.closedWith = args
    this.readyState = 3
  }
}

test('messages the backend sent before the client upgrade completed reach the client first, then the backend close', () => {
  const bridge = new WebSocketBridge(new Metrics(), createLogger('silent'), new CorsPolicy('*'))
  const backend = new FakeBackendSocket()
  let released = 0
  const session = new WebSocketSession(bridge, { socket: backend as unknown as WebSocket, release: () => void released++ }, { requestId: 'r', service: 's', clientIp: '127.0.0.1' })
  backend.onmessage!({ data: 'm1' })
  backend.onmessage!({ data: 'm2' })
  backend.onclose!({ code: 4001, reason: 'bye' })
  const delivered: unknown[] = []
  const client = {
    send: (message: unknown) => void delivered.push(['message', message]),
    close: (code: number, reason: string) => void delivered.push(['close', code, reason]),
    getBufferedAmount: () => 0,
  }
  session.opened(client as unknown as ServerWebSocket<SessionData>)
  expect(delivered).toEqual([
    ['message', 'm1'],
    ['message', 'm2'],
    ['close', 4001, 'bye'],
  ])
  expect(released).toBe(1)
})
