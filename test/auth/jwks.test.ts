/**
 * Authentication with RS256/ES256 keys from AUTH_JWKS_URL: a real key set served by a test
 * server, the algorithms a key may sign with, the issuer and audience checks, key rotation, and
 * how often the identity provider is asked (never more than the cooldowns allow).
 */
import { afterAll, afterEach, beforeAll, describe, expect, setSystemTime, test } from 'bun:test'
import { SignJWT, exportSPKI } from 'jose'
import { type MockBackend, closedPort, startBackend } from '../helpers/backend'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { type KeyServer, type SigningKey, signedToken, signingKey, startKeyServer } from '../helpers/tokens'
import { waitFor } from '../helpers/wait'

let backend: MockBackend
let idp: KeyServer
let gw: RunningGateway
let rsa: SigningKey
let ec: SigningKey

const ISSUER = 'https://id.example.com/'
const AUDIENCE = 'api-gateway'
const claims = { iss: ISSUER, aud: AUDIENCE }

beforeAll(async () => {
  backend = startBackend((request) => Response.json({ subject: request.headers.get('x-auth-subject') }))
  rsa = await signingKey('RS256', 'rsa-1')
  ec = await signingKey('ES256', 'ec-1')
  idp = startKeyServer([rsa.publicJwk, ec.publicJwk])
  gw = await startGateway({ AUTH_JWKS_URL: idp.url, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, ORCHESTRATOR_URL: backend.url, RATE_LIMIT: '0' })
  // The keys are fetched at start, in the background.
  expect(await waitFor(() => idp.fetches() === 1)).toBe(true)
})

afterAll(async () => {
  await gw.stop()
  idp.stop()
  backend.stop()
})

afterEach(() => setSystemTime())

const call = (token: string, url = gw.url) => fetch(`${url}/api/v1/orchestrator/x`, { headers: { authorization: `Bearer ${token}` } })
const statusOf = async (token: string, url?: string) => (await call(token, url)).status

describe('algorithms and claims', () => {
  test('RS256 and ES256 tokens signed by keys of the set are accepted; the backend gets the sub', async () => {
    const response = await call(await signedToken(rsa, { claims }))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ subject: 'alice' })
    expect(await statusOf(await signedToken(ec, { claims: { ...claims, sub: 'bob' } }))).toBe(200)
  })

  test('a token signed by a key outside the set, under a kid of the set: 401', async () => {
    const impostor = await signingKey('RS256', 'rsa-1')
    expect(await statusOf(await signedToken(impostor, { claims }))).toBe(401)
  })

  test('HS256 signed with the RSA public key (the algorithm-confusion attack): 401', async () => {
    const publicKey = await crypto.subtle.importKey('jwk', rsa.publicJwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify'])
    const pem = await exportSPKI(publicKey)
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const forged = await new SignJWT({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 3600, ...claims })
        .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
        .sign(new TextEncoder().encode(secret))
      expect(await statusOf(forged)).toBe(401)
    }
  })

  test('keys or key URLs inside the token header are never trusted (jwk, jku)', async () => {
    // Under the kid of the set's own key, and under a kid of its own.
    const attacker = await signingKey('RS256', 'rsa-1')
    const attackerSet = startKeyServer([attacker.publicJwk])
    try {
      expect(await statusOf(await signedToken(attacker, { claims, header: { jwk: attacker.publicJwk } }))).toBe(401)
      expect(await statusOf(await signedToken(attacker, { claims, header: { kid: 'evil', jwk: attacker.publicJwk } }))).toBe(401)
      expect(await statusOf(await signedToken(attacker, { claims, header: { jku: attackerSet.url } }))).toBe(401)
      expect(await statusOf(await signedToken(attacker, { claims, header: { kid: 'evil', jku: attackerSet.url, x5u: attackerSet.url } }))).toBe(401)
      expect(attackerSet.fetches()).toBe(0)
    } finally {
      attackerSet.stop()
    }
  })

  test('AUTH_ISSUER and AUTH_AUDIENCE: a wrong or missing iss or aud gets 401', async () => {
    expect(await statusOf(await signedToken(rsa, { claims: { ...claims, iss: 'https://evil.example.com/' } }))).toBe(401)
    expect(await statusOf(await signedToken(rsa, { claims: { ...claims, aud: 'another-api' } }))).toBe(401)
    expect(await statusOf(await signedToken(rsa, { claims: { aud: AUDIENCE } }))).toBe(401)
    expect(await statusOf(await signedToken(rsa, { claims: { iss: ISSUER } }))).toBe(401)
    expect(await statusOf(await signedToken(rsa, { claims: { ...claims, aud: ['other', AUDIENCE] } }))).toBe(200)
  })
})

describe('key rotation and the identity provider', () => {
  test('a new kid within 30 s of the last fetch gets 401 without a fetch; after the cooldown it is fetched once and accepted', async () => {
    const fetchesBefore = idp.fetches()
    const rotated = await signingKey('RS256', 'rsa-2')
    idp.keys = [rsa.publicJwk, rotated.publicJwk]
    const token = await signedToken(rotated, { claims })
    expect(await statusOf(token)).toBe(401)
    expect(idp.fetches()).toBe(fetchesBefore)
    setSystemTime(Date.now() + 31_000)
    expect(await statusOf(token)).toBe(200)
    expect(idp.fetches()).toBe(fetchesBefore + 1)
    // The old key still signs until the provider drops it.
    expect(await statusOf(await signedToken(rsa, { claims }))).toBe(200)
  })

  test('a flood of unknown kids makes at most one fetch per 30 s', async () => {
    setSystemTime(Date.now() + 62_000)
    const fetchesBefore = idp.fetches()
    const strangers = await Promise.all(Array.from({ length: 5 }, (_, i) => signingKey('ES256', `unknown-${i}`)))
    const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => signedToken(strangers[i % 5]!, { claims, header: { kid: `unknown-${i}` } })))
    const statuses = await Promise.all(tokens.map((token) => statusOf(token)))
    expect(new Set(statuses)).toEqual(new Set([401]))
    expect(idp.fetches()).toBe(fetchesBefore + 1)
    // Again, later within the same 30 s: no fetch at all.
    setSystemTime(Date.now() + 20_000)
    await Promise.all(tokens.slice(0, 50).map((token) => statusOf(token)))
    expect(idp.fetches()).toBe(fetchesBefore + 1)
  })

  test('an unreachable key set does not stop the start; tokens get 401 until it can be fetched, and failed fetches are not repeated per request', async () => {
    const port = await closedPort()
    const url = `http://127.0.0.1:${port}/.well-known/jwks.json`
    const early = await startGateway({ AUTH_JWKS_URL: url, ORCHESTRATOR_URL: backend.url, RATE_LIMIT: '0' })
    let later: KeyServer | undefined
    try {
      const token = await signedToken(rsa)
      const statuses = await Promise.all(Array.from({ length: 100 }, () => statusOf(token, early.url)))
      expect(new Set(statuses)).toEqual(new Set([401]))
      const metrics = await (await fetch(`${early.url}/metrics`)).text()
      const failedFetches = Number(/^gateway_auth_jwks_fetches_total\{outcome="error"\} (\d+)/m.exec(metrics)?.[1])
      // The one at start, perhaps one more a second later: not one per request.
      expect(failedFetches).toBeGreaterThanOrEqual(1)
      expect(failedFetches).toBeLessThanOrEqual(3)
      expect(early.logs.filter((l) => l.msg.startsWith('JWKS cannot be fetched'))).toHaveLength(1)

      later = startKeyServer([rsa.publicJwk], port)
      let status = 0
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = await statusOf(token, early.url)
        if (status !== 200) await Bun.sleep(100)
      }
      expect(status).toBe(200)
      expect(early.logs.some((l) => l.msg.startsWith('JWKS fetched again'))).toBe(true)
    } finally {
      await early.stop()
      later?.stop()
    }
  })
})
