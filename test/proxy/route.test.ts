import { describe, expect, test } from 'bun:test'
import { policiesOfEnvironment } from '../../src/config/policies'
import { loadConfig } from '../../src/config/settings'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { route } from '../../src/pipeline/route'
import { Limiters } from '../../src/ratelimit/limiters'
import { RequestContext } from '../../src/request/context'
import { buildPolicyTable, resolvePolicy } from '../../src/request/policy-table'
import { classify } from '../../src/request/route-table'
import { Upstreams, pathOn } from '../../src/upstream/upstream'

function classified(url: string, method = 'GET'): RequestContext {
  const ctx = new RequestContext(new Request(url, { method }), undefined)
  classify(ctx)
  return ctx
}

describe('every request is classified once, from its path, by the one route table', () => {
  test('/api/v1/<service>... is proxied for any name but the reserved events', () => {
    expect(classified('http://gw/api/v1/runner/jobs?x=1')).toMatchObject({ route: { name: 'proxy' }, serviceName: 'runner' })
    expect(classified('http://gw/api/v1/runner')).toMatchObject({ route: { name: 'proxy' }, serviceName: 'runner' })
    expect(classified('http://gw/api/v1/runner?x')).toMatchObject({ route: { name: 'proxy' }, serviceName: 'runner' })
    expect(classified('http://gw/api/v1/eventsource/x')).toMatchObject({ route: { name: 'proxy' }, serviceName: 'eventsource' })
  })

  test('the event routes, with publishing told apart, and what each route admits', () => {
    expect(classified('http://gw/api/v1/events/alice').route).toMatchObject({ name: 'subscribe', admission: 'token', bindsClient: true })
    expect(classified('http://gw/api/v1/events/alice', 'HEAD').route.name).toBe('subscribe')
    expect(classified('http://gw/api/v1/events/alice', 'POST').route).toMatchObject({ name: 'publish', admission: 'publisher', bindsClient: false })
    expect(classified('http://gw/api/v1/events', 'POST').route.name).toBe('broadcast')
    expect(classified('http://gw/api/v1/events?x=1', 'POST').route.name).toBe('broadcast')
    expect(classified('http://gw/api/v1/events/alice/response', 'POST').route).toMatchObject({ name: 'answer', bindsClient: true })
    // Strict: a trailing slash or another segment is no event route.
    for (const path of ['/api/v1/events/alice/', '/api/v1/events/', '/api/v1/events/alice/other', '/api/v1/events/alice/response/x']) {
      expect(classified(`http://gw${path}`, 'POST').route.name).toBe('not_found')
    }
  })

  test('health, readiness and metrics are ops, admitted without credentials and never limited; anything else is not found', () => {
    expect(classified('http://gw/health').route).toMatchObject({ name: 'health', kind: 'ops', admission: 'none', rateLimited: false })
    expect(classified('http://gw/metrics?x').route.name).toBe('metrics')
    expect(classified('http://gw/api/v1/').route.name).toBe('not_found')
    expect(classified('http://gw/api/v2/runner').route.name).toBe('not_found')
    expect(classified('http://gw/healthz').route.name).toBe('not_found')
  })
})

describe('the route step', () => {
  const config = loadConfig({ X_URL: 'http://h:9000/base' })
  const upstreams = new Upstreams(config, new Metrics(), createLogger('silent'))
  const table = buildPolicyTable(policiesOfEnvironment(config), { upstreamFor: (s) => upstreams.get(s.name)!, limiterFor: (l) => new Limiters(null).limiterFor(l), hitlResponsePath: '/responses' })
  const resolved = (url: string, method = 'GET') => {
    const ctx = classified(url, method)
    resolvePolicy(ctx, table)
    return ctx
  }

  test('finds the service, and the path on the backend keeps the base path', () => {
    const ctx = resolved('http://gw/api/v1/x/a/b?q=%41')
    route(ctx)
    expect(ctx.upstream?.name).toBe('x')
    expect(pathOn(config.services.get('x')!.instances[0]!, ctx.url.slice(ctx.restStart, ctx.pathEnd))).toBe('/base/a/b')
    expect(ctx.url.slice(ctx.pathEnd)).toBe('?q=%41')
    const bare = resolved('http://gw/api/v1/x')
    route(bare)
    expect(pathOn(config.services.get('x')!.instances[0]!, bare.url.slice(bare.restStart, bare.pathEnd))).toBe('/base')
  })

  test('unknown services, malformed percent-encoding, methods not proxied and declared oversize bodies are errors with their codes', () => {
    expect(() => route(resolved('http://gw/api/v1/nope/a'))).toThrow(expect.objectContaining({ code: 'unknown_service' }))
    expect(() => route(resolved('http://gw/api/v1/x/%G0'))).toThrow(expect.objectContaining({ code: 'bad_request' }))
    expect(() => route(resolved('http://gw/api/v1/x/a', 'PROPFIND'))).toThrow(expect.objectContaining({ code: 'bad_request' }))
    const large = new RequestContext(new Request('http://gw/api/v1/x/a', { method: 'POST', headers: { 'content-length': String(config.maxBodyBytes + 1) } }), undefined)
    classify(large)
    resolvePolicy(large, table)
    expect(() => route(large)).toThrow(expect.objectContaining({ code: 'payload_too_large' }))
  })

  test('a method the gateway\'s own route does not answer is 405 with Allow; an unknown path is 404', () => {
    expect(() => route(resolved('http://gw/health', 'POST'))).toThrow(expect.objectContaining({ code: 'method_not_allowed', headers: { allow: 'GET, HEAD' } }))
    expect(() => route(resolved('http://gw/api/v1/events/alice', 'PUT'))).toThrow(expect.objectContaining({ code: 'method_not_allowed', headers: { allow: 'GET, HEAD, POST' } }))
    expect(() => route(resolved('http://gw/api/v1/events', 'GET'))).toThrow(expect.objectContaining({ code: 'method_not_allowed', headers: { allow: 'POST' } }))
    expect(() => route(resolved('http://gw/nothing-here'))).toThrow(expect.objectContaining({ code: 'not_found' }))
  })
})
