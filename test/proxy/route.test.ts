import { describe, expect, test } from 'bun:test'
import { loadConfig } from '../../src/config'
import { isProxyUrl } from '../../src/proxy/handler'
import { resolveRoute } from '../../src/proxy/route'

describe('which requests the proxy takes', () => {
  test('/api/v1/<service>... for any name but the reserved events', () => {
    expect(isProxyUrl('http://gw/api/v1/runner/jobs?x=1')).toBe(true)
    expect(isProxyUrl('http://gw/api/v1/runner')).toBe(true)
    expect(isProxyUrl('http://gw/api/v1/runner?x')).toBe(true)
    expect(isProxyUrl('http://gw/api/v1/eventsource/x')).toBe(true)
    expect(isProxyUrl('http://gw/api/v1/events/alice')).toBe(false)
    expect(isProxyUrl('http://gw/api/v1/events')).toBe(false)
    expect(isProxyUrl('http://gw/api/v1/events?x=1')).toBe(false)
    expect(isProxyUrl('http://gw/api/v1/')).toBe(false)
    expect(isProxyUrl('http://gw/health')).toBe(false)
    expect(isProxyUrl('http://gw/api/v2/runner')).toBe(false)
  })
})

describe('resolveRoute', () => {
  const services = loadConfig({ X_URL: 'http://h:9000/base' }).services

  test('maps the rest of the path and the query onto the base URL', () => {
    expect(resolveRoute('http://gw/api/v1/x/a/b?q=%41', services)).toMatchObject({ upstreamUrl: 'http://h:9000/base/a/b?q=%41', upstreamPath: '/base/a/b' })
    expect(resolveRoute('http://gw/api/v1/x', services).upstreamUrl).toBe('http://h:9000/base')
    expect(resolveRoute('http://gw/api/v1/x?only=query', services).upstreamUrl).toBe('http://h:9000/base?only=query')
  })

  test('unknown services and malformed percent-encoding are errors with their codes', () => {
    expect(() => resolveRoute('http://gw/api/v1/nope/a', services)).toThrow(expect.objectContaining({ code: 'unknown_service' }))
    expect(() => resolveRoute('http://gw/api/v1/x/%G0', services)).toThrow(expect.objectContaining({ code: 'bad_request' }))
  })
})
