import { describe, expect, test } from 'bun:test'
import { loadConfig } from '../../src/config'
import { Metrics } from '../../src/ops/metrics'
import { RequestContext } from '../../src/pipeline/context'
import { classify } from '../../src/pipeline/routes'
import { resolveProxyRoute } from '../../src/proxy/route'
import { Upstreams, pathOn } from '../../src/upstream/upstream'
import { createLogger } from '../../src/log'

function classified(url: string, method = 'GET'): RequestContext {
  const ctx = new RequestContext(new Request(url, { method }), undefined)
  classify(ctx)
  return ctx
}

describe('every request is classified once, from its path', () => {
  test('/api/v1/<service>... is proxied for any name but the reserved events', () => {
    expect(classified('http://gw/api/v1/runner/jobs?x=1')).toMatchObject({ kind: 'proxy', serviceName: 'runner' })
    expect(classified('http://gw/api/v1/runner')).toMatchObject({ kind: 'proxy', serviceName: 'runner' })
    expect(classified('http://gw/api/v1/runner?x')).toMatchObject({ kind: 'proxy', serviceName: 'runner' })
    expect(classified('http://gw/api/v1/eventsource/x')).toMatchObject({ kind: 'proxy', serviceName: 'eventsource' })
  })

  test('the event routes, with publishing told apart', () => {
    expect(classified('http://gw/api/v1/events/alice')).toMatchObject({ kind: 'events', isPublish: false })
    expect(classified('http://gw/api/v1/events/alice', 'POST')).toMatchObject({ kind: 'events', isPublish: true })
    expect(classified('http://gw/api/v1/events', 'POST')).toMatchObject({ kind: 'events', isPublish: true })
    expect(classified('http://gw/api/v1/events?x=1', 'POST')).toMatchObject({ kind: 'events', isPublish: true })
    expect(classified('http://gw/api/v1/events/alice/response', 'POST')).toMatchObject({ kind: 'events', isPublish: false })
  })

  test('health, readiness and metrics are ops; anything else is not found', () => {
    expect(classified('http://gw/health').kind).toBe('ops')
    expect(classified('http://gw/metrics?x').kind).toBe('ops')
    expect(classified('http://gw/api/v1/').kind).toBe('not_found')
    expect(classified('http://gw/api/v2/runner').kind).toBe('not_found')
    expect(classified('http://gw/healthz').kind).toBe('not_found')
  })
})

describe('the route step of a proxied request', () => {
  const config = loadConfig({ X_URL: 'http://h:9000/base' })
  const upstreams = new Upstreams(config, new Metrics(), createLogger('silent'))

  test('finds the service, and the path on the backend keeps the base path', () => {
    const ctx = classified('http://gw/api/v1/x/a/b?q=%41')
    resolveProxyRoute(ctx, upstreams, 1000)
    expect(ctx.upstream?.name).toBe('x')
    expect(pathOn(config.services.get('x')!.instances[0]!, ctx.url.slice(ctx.restStart, ctx.pathEnd))).toBe('/base/a/b')
    expect(ctx.url.slice(ctx.pathEnd)).toBe('?q=%41')
    const bare = classified('http://gw/api/v1/x')
    resolveProxyRoute(bare, upstreams, 1000)
    expect(pathOn(config.services.get('x')!.instances[0]!, bare.url.slice(bare.restStart, bare.pathEnd))).toBe('/base')
  })

  test('unknown services, malformed percent-encoding, methods not proxied and declared oversize bodies are errors with their codes', () => {
    expect(() => resolveProxyRoute(classified('http://gw/api/v1/nope/a'), upstreams, 1000)).toThrow(expect.objectContaining({ code: 'unknown_service' }))
    expect(() => resolveProxyRoute(classified('http://gw/api/v1/x/%G0'), upstreams, 1000)).toThrow(expect.objectContaining({ code: 'bad_request' }))
    expect(() => resolveProxyRoute(classified('http://gw/api/v1/x/a', 'PROPFIND'), upstreams, 1000)).toThrow(expect.objectContaining({ code: 'bad_request' }))
    const large = classified('http://gw/api/v1/x/a', 'POST')
    large.declaredLength = 1001
    expect(() => resolveProxyRoute(large, upstreams, 1000)).toThrow(expect.objectContaining({ code: 'payload_too_large' }))
  })
})
