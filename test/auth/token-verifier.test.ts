/** The verification policy on its own, with a clock the test moves. */
import { expect, test } from 'bun:test'
import type { JWTVerifyGetKey } from 'jose'
import type { AuthConfig } from '../../src/config/settings'
import { CLOCK_LEEWAY_SECONDS, TokenRejected, TokenVerifier, VERIFIED_CACHE_MAX_AGE_MS } from '../../src/auth/token-verifier'
import { TEST_SECRET, hs256Token } from '../helpers/tokens'

const secretConfig: AuthConfig = { jwtSecret: TEST_SECRET, jwksUrl: null, issuer: null, audience: null, clientClaim: 'sub', cookie: 'access_token' }
const keySetConfig: AuthConfig = { ...secretConfig, jwtSecret: null, jwksUrl: new URL('http://127.0.0.1:9/jwks') }

async function rejection(verify: () => unknown): Promise<TokenRejected | undefined> {
  try {
    await verify()
  } catch (error) {
    if (error instanceof TokenRejected) return error
    throw error
  }
  return undefined
}

test('a key set accepts RS256 and ES256 only: an HS256 token is refused even if the key set handed out a secret', async () => {
  const secret = new TextEncoder().encode(TEST_SECRET)
  // A resolver that would verify anything it is asked to: the allow-list must stop HS256 before it.
  const permissive: JWTVerifyGetKey = async () => secret
  const verifier = new TokenVerifier(keySetConfig, permissive)
  expect((await rejection(async () => verifier.verify(await hs256Token(TEST_SECRET))))?.reason).toBe('invalid')
})

test('a remembered token is answered at once, and refused once exp plus the leeway has passed', async () => {
  let now = Date.now()
  const verifier = new TokenVerifier(secretConfig, null, () => now)
  const exp = Math.floor(now / 1000) + 10
  const token = await hs256Token(TEST_SECRET, { claims: { exp } })
  expect((await verifier.verify(token)).subject).toBe('alice')
  const again = verifier.verify(token)
  expect(again instanceof Promise).toBe(false)
  now = (exp + CLOCK_LEEWAY_SECONDS + 1) * 1000
  expect((await rejection(() => verifier.verify(token)))?.reason).toBe('expired')
})

test('a remembered token is verified again after at most a minute', async () => {
  let now = Date.now()
  const verifier = new TokenVerifier(secretConfig, null, () => now)
  const token = await hs256Token(TEST_SECRET)
  await verifier.verify(token)
  expect(verifier.verify(token) instanceof Promise).toBe(false)
  now += VERIFIED_CACHE_MAX_AGE_MS + 1
  expect(verifier.verify(token) instanceof Promise).toBe(true)
})
