/** The identity provider's keys: a failed refresh keeps the keys already known. */
import { expect, test } from 'bun:test'
import { RemoteKeys } from '../../src/auth/remote-keys'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { signingKey, startKeyServer } from '../helpers/tokens'
import { waitFor } from '../helpers/wait'

test('when the provider goes down, a refresh fails and the keys fetched before still resolve', async () => {
  const key = await signingKey('ES256', 'ec-1')
  const idp = startKeyServer([key.publicJwk])
  const lines: string[] = []
  const keys = new RemoteKeys(new URL(idp.url), createLogger('info', { write: (line: string) => lines.push(line) }), new Metrics())
  try {
    keys.refresh()
    expect(await waitFor(() => idp.fetches() === 1)).toBe(true)
    const header = { alg: 'ES256', kid: 'ec-1' }
    expect(((await keys.resolve(header, { payload: '', signature: '' })) as CryptoKey).type).toBe('public')
    idp.stop()
    keys.refresh()
    expect(await waitFor(() => lines.some((line) => line.includes('JWKS cannot be fetched')))).toBe(true)
    expect(((await keys.resolve(header, { payload: '', signature: '' })) as CryptoKey).type).toBe('public')
  } finally {
    keys.close()
    idp.stop()
  }
})
