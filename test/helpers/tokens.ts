/**
 * Real signed tokens for the tests, made with jose, and a real JWKS endpoint (`Bun.serve` on
 * 127.0.0.1) that counts how often the gateway fetches it.
 */
import type { Server } from 'bun'
import { type CryptoKey, type JWK, type JWTPayload, SignJWT, exportJWK, generateKeyPair } from 'jose'

/** A secret of the length RFC 7518 asks for HS256 (32 bytes). */
export const TEST_SECRET = 'test-secret-for-hs256-of-32-bytes!'

/** Seconds since the epoch, now. */
export const nowSeconds = () => Math.floor(Date.now() / 1000)

export interface TokenOptions {
  /** Claims; `sub` 'alice' and `exp` an hour ahead unless given (undefined leaves one out). */
  claims?: JWTPayload
  /** Extra protected-header fields (`kid`, `jwk`, `jku`, ...). */
  header?: Record<string, unknown>
}

function withDefaults(claims: JWTPayload = {}): JWTPayload {
  const all: JWTPayload = { sub: 'alice', exp: nowSeconds() + 3600, ...claims }
  for (const [name, value] of Object.entries(all)) if (value === undefined) delete all[name]
  return all
}

/**
 * An HS256 token signed with `secret` (the UTF-8 bytes).
 * @example hs256Token(TEST_SECRET, { claims: { sub: 'bob' } })
 */
export function hs256Token(secret: string | Uint8Array, options: TokenOptions = {}): Promise<string> {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  return new SignJWT(withDefaults(options.claims)).setProtectedHeader({ alg: 'HS256', ...options.header }).sign(key)
}

/** An asymmetric signing key and its public JWK (with `kid` and `alg`). */
export interface SigningKey {
  kid: string
  alg: 'RS256' | 'ES256'
  privateKey: CryptoKey
  publicJwk: JWK
}

export async function signingKey(alg: 'RS256' | 'ES256', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
}

/** A token signed with `key`, its `kid` in the header. */
export function signedToken(key: SigningKey, options: TokenOptions = {}): Promise<string> {
  return new SignJWT(withDefaults(options.claims)).setProtectedHeader({ alg: key.alg, kid: key.kid, ...options.header }).sign(key.privateKey)
}

/** A token with `alg: none` (RFC 7519 §6): a header, a payload, and an empty signature. */
export function unsecuredToken(claims: JWTPayload = {}): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(withDefaults(claims))}.`
}

export interface KeyServer {
  url: string
  /** What it serves: change it to rotate keys. */
  keys: JWK[]
  /** How many times the key set was fetched. */
  fetches(): number
  stop(): void
}

/**
 * Serves `{ keys }` at `/.well-known/jwks.json`.
 * @param port a fixed port (to bring an identity provider up where a gateway already looks), or 0.
 */
export function startKeyServer(keys: JWK[], port = 0): KeyServer {
  let fetches = 0
  const state = { keys }
  const server: Server<unknown> = Bun.serve({
    hostname: '127.0.0.1',
    port,
    fetch() {
      fetches++
      return Response.json({ keys: state.keys })
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}/.well-known/jwks.json`,
    get keys() {
      return state.keys
    },
    set keys(next: JWK[]) {
      state.keys = next
    },
    fetches: () => fetches,
    stop: () => server.stop(true),
  }
}
