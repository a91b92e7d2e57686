import { describe, expect, test } from 'bun:test'
import { createLogger } from '../../src/ops/log'
import { AccessLog } from '../../src/pipeline/access-log'
import { RequestContext } from '../../src/request/context'

function collector(level: 'debug' | 'info' | 'warn' = 'info') {
  const lines: string[] = []
  const accessLog = new AccessLog(createLogger(level, { write: (line: string) => void lines.push(line) }))
  return { accessLog, lines }
}

function context(): RequestContext {
  const ctx = new RequestContext(new Request('http://gw/api/v1/runner/jobs', { method: 'PATCH' }), undefined)
  ctx.requestId = 'req-1'
  ctx.clientIp = '203.0.113.9'
  return ctx
}

describe('the access log serializer', () => {
  test("writes pino's line format: level, time, service fields, request fields, msg", () => {
    const { accessLog, lines } = collector()
    const ctx = context()
    ctx.upstreamError = 'timeout'
    accessLog.line(ctx, 'warn', 'Proxied request', accessLog.serviceFields('runner', 'http://h:8082/base'), '/base/jobs', 504, 30001, 1)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.endsWith('}\n')).toBe(true)
    const parsed = JSON.parse(lines[0]!)
    expect(Object.keys(parsed)).toEqual(['level', 'time', 'service', 'target_url', 'method', 'path', 'status', 'duration_ms', 'request_id', 'client_ip', 'attempts', 'upstream_error', 'msg'])
    expect(parsed).toMatchObject({
      level: 'warn',
      service: 'runner',
      target_url: 'http://h:8082/base',
      method: 'PATCH',
      path: '/base/jobs',
      status: 504,
      attempts: 1,
      duration_ms: 30001,
      request_id: 'req-1',
      client_ip: '203.0.113.9',
      upstream_error: 'timeout',
      msg: 'Proxied request',
    })
    expect(new Date(parsed.time).toISOString()).toBe(parsed.time)
  })

  test('escapes a path that needs it, and only then, into valid JSON', () => {
    const { accessLog, lines } = collector()
    const awkward = '/a"b\\c\u0001\n\ud800'
    accessLog.line(context(), 'info', 'Request', accessLog.serviceFields('gateway'), awkward, 404, 0, undefined)
    expect(JSON.parse(lines[0]!).path).toBe(awkward)
  })

  test('service fields are serialized once per service, with escaping', () => {
    const { accessLog } = collector()
    expect(accessLog.serviceFields('x', 'http://h/"q"')).toBe(',"service":"x","target_url":"http://h/\\"q\\""')
    expect(accessLog.serviceFields('x', 'http://h/"q"')).toBe(accessLog.serviceFields('x', 'http://h/"q"'))
    expect(accessLog.serviceFields('events')).toBe(',"service":"events"')
  })

  test("follows the logger's level", () => {
    expect(collector('info').accessLog.enabled('debug')).toBe(false)
    expect(collector('info').accessLog.enabled('info')).toBe(true)
    expect(collector('warn').accessLog.enabled('info')).toBe(false)
    expect(collector('debug').accessLog.enabled('debug')).toBe(true)
  })
})
