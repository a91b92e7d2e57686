import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'

let backend: MockBackend
let anyOrigin: RunningGateway
let listed: RunningGateway

beforeAll(async () => {
  backend = startBackend()
  anyOrigin = await startGateway({ ORCHESTRATOR_URL: backend.url })
  listed = await startGateway({ ORCHESTRATOR_URL: backend.url, CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' })
})
afterAll(async () => {
  await anyOrigin.stop()
  await listed.stop()
  backend.stop()
})

const preflight = (origin: string) => ({
  method: 'OPTIONS',
  headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-custom' },
})

describe('CORS preflight is answered by the gateway', () => {
  test('with CORS_ORIGINS=*: any origin, never credentials', async () => {
    const before = backend.seen.length
    const response = await fetch(`${anyOrigin.url}/api/v1/orchestrator/x`, preflight('https://anywhere.example'))
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
    expect(response.headers.has('access-control-allow-credentials')).toBe(false)
    expect(response.headers.get('access-control-allow-methods')).toContain('POST')
    expect(response.headers.get('access-control-allow-headers')).toBe('content-type, x-custom')
    expect(backend.seen.length).toBe(before)
  })

  test('a listed origin is echoed with credentials', async () => {
    const response = await fetch(`${listed.url}/api/v1/orchestrator/x`, preflight('https://app.example.com'))
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(response.headers.get('access-control-allow-credentials')).toBe('true')
    expect(response.headers.get('vary')).toContain('Origin')
  })

  test('an origin not listed gets 403 and no grant', async () => {
    const response = await fetch(`${listed.url}/api/v1/orchestrator/x`, preflight('https://evil.example'))
    expect(response.status).toBe(403)
    expect(response.headers.has('access-control-allow-origin')).toBe(false)
    expect((await response.json()).error).toBe('forbidden')
  })

  test('a preflight works on gateway routes too', async () => {
    const response = await fetch(`${listed.url}/health`, preflight('http://localhost:5173'))
    expect(response.status).toBe(204)
  })
})

describe('plain OPTIONS and actual requests', () => {
  test('an OPTIONS without Access-Control-Request-Method is proxied', async () => {
    const before = backend.seen.length
    const response = await fetch(`${listed.url}/api/v1/orchestrator/x`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com' } })
    expect(response.status).toBe(200)
    expect(backend.seen.length).toBe(before + 1)
    expect(backend.seen[before]!.method).toBe('OPTIONS')
  })

  test('actual responses carry the grant and expose the gateway headers', async () => {
    const response = await fetch(`${listed.url}/api/v1/orchestrator/x`, { headers: { origin: 'https://app.example.com' } })
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(response.headers.get('access-control-allow-credentials')).toBe('true')
    expect(response.headers.get('access-control-expose-headers')).toContain('X-Request-Id')
    const star = await fetch(`${anyOrigin.url}/api/v1/orchestrator/x`, { headers: { origin: 'https://app.example.com' } })
    expect(star.headers.get('access-control-allow-origin')).toBe('*')
    expect(star.headers.has('access-control-allow-credentials')).toBe(false)
  })

  test('an unlisted origin gets no grant on actual responses', async () => {
    const response = await fetch(`${listed.url}/api/v1/orchestrator/x`, { headers: { origin: 'https://evil.example' } })
    expect(response.status).toBe(200)
    expect(response.headers.has('access-control-allow-origin')).toBe(false)
  })
})
