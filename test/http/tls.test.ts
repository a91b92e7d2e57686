/**
 * HTTPS on PORT with TLS_CERT_FILE and TLS_KEY_FILE (a certificate the test makes with openssl),
 * each wrong TLS setting stopping the start with one line, and backends over https:// verified.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type MockBackend, startBackend } from '../helpers/backend'
import { type Certificate, makeCertificate } from '../helpers/certificates'
import { type RunningGateway, startGateway } from '../helpers/gateway'
import { startGatewayProcess } from '../helpers/gateway-process'
import { openStream } from '../helpers/sse-client'

const ROOT = new URL('../..', import.meta.url).pathname

let certificate: Certificate
let other: Certificate
let backend: MockBackend
let gw: RunningGateway
let httpsUrl: string

beforeAll(async () => {
  certificate = makeCertificate()
  other = makeCertificate()
  backend = startBackend((request) => Response.json({ proto: request.headers.get('x-forwarded-proto') }))
  gw = await startGateway({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: certificate.keyFile, RUNNER_URL: backend.url, RATE_LIMIT: '0' })
  httpsUrl = `https://127.0.0.1:${gw.port}`
})

afterAll(async () => {
  await gw.stop()
  backend.stop()
  certificate.remove()
  other.remove()
})

describe('HTTPS', () => {
  test('the gateway answers over HTTPS with its certificate; backends get X-Forwarded-Proto: https, whatever the client said', async () => {
    const tls = { ca: certificate.cert }
    expect((await fetch(`${httpsUrl}/health`, { tls })).status).toBe(200)
    const proxied = await fetch(`${httpsUrl}/api/v1/runner/jobs`, { tls, headers: { 'x-forwarded-proto': 'http' } })
    expect(await proxied.json()).toEqual({ proto: 'https' })
  })

  test('a client that does not trust the certificate cannot connect', async () => {
    await expect(fetch(`${httpsUrl}/health`)).rejects.toThrow()
  })

  test("the gateway's own routes are found over HTTPS whatever the Host (even one shorter than four characters)", async () => {
    for (const host of ['gw', 'a', 'gateway.example.com:8443']) {
      const response = await fetch(`${httpsUrl}/health`, { tls: { ca: certificate.cert, serverName: 'localhost' } as never, headers: { host } })
      expect([host, response.status]).toEqual([host, 200])
    }
  })

  test('HTTPS only: plain HTTP on the port gets no HTTP answer at all', async () => {
    const socket = await Bun.connect({
      hostname: '127.0.0.1',
      port: gw.port,
      socket: { data: (_socket, chunk) => void (received += chunk.toString('latin1')), close: () => closed.resolve() },
    })
    let received = ''
    const closed = Promise.withResolvers<void>()
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await Promise.race([closed.promise, Bun.sleep(3_000)])
    socket.end()
    expect(received.startsWith('HTTP/')).toBe(false)
  })

  test('an event stream over HTTPS receives what is published', async () => {
    const stream = await openStream(`${httpsUrl}/api/v1/events/tls-user`, {}, { ca: certificate.cert })
    try {
      await stream.waitFor((e) => e.event === 'connection.established')
      const response = await fetch(`${httpsUrl}/api/v1/events/tls-user`, {
        tls: { ca: certificate.cert },
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_type: 'run.progress', data: { step: 1 } }),
      })
      expect(response.status).toBe(202)
      const event = await stream.waitFor((e) => e.event === 'run.progress')
      expect(event.data.data).toEqual({ step: 1 })
    } finally {
      stream.close()
    }
  })
})

describe('wrong TLS settings stop the start with one line naming the variable and the path', () => {
  const runMain = (env: Record<string, string>) => {
    const result = Bun.spawnSync(['bun', 'src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH!, HOST: '127.0.0.1', PORT: '1', ...env }, timeout: 10_000 })
    const stderr = result.stderr.toString().trim()
    expect(result.exitCode).toBe(1)
    expect(stderr.split('\n')).toHaveLength(1)
    return stderr
  }

  test('only one of the two files set', () => {
    expect(runMain({ TLS_CERT_FILE: certificate.certFile })).toContain(`TLS_CERT_FILE=${JSON.stringify(certificate.certFile)} is set without TLS_KEY_FILE`)
    expect(runMain({ TLS_KEY_FILE: certificate.keyFile })).toContain(`TLS_KEY_FILE=${JSON.stringify(certificate.keyFile)} is set without TLS_CERT_FILE`)
  })

  test('a file that cannot be read', () => {
    const missing = join(ROOT, 'no-such-cert.pem')
    const line = runMain({ TLS_CERT_FILE: missing, TLS_KEY_FILE: certificate.keyFile })
    expect(line).toContain(`TLS_CERT_FILE=${JSON.stringify(missing)} cannot be read`)
  })

  test('a file that is not PEM', () => {
    const text = join(other.certFile, '..', 'not-pem.txt')
    writeFileSync(text, 'hello, this is not a certificate\n')
    expect(runMain({ TLS_CERT_FILE: text, TLS_KEY_FILE: certificate.keyFile })).toContain(`TLS_CERT_FILE=${JSON.stringify(text)} is not a PEM file`)
    expect(runMain({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: text })).toContain(`TLS_KEY_FILE=${JSON.stringify(text)} is not a PEM file`)
    // PEM, but of the wrong kind: the key given as the certificate.
    expect(runMain({ TLS_CERT_FILE: certificate.keyFile, TLS_KEY_FILE: certificate.keyFile })).toContain(`TLS_CERT_FILE=${JSON.stringify(certificate.keyFile)} is not a PEM certificate`)
  })

  test('a key that does not belong to the certificate', () => {
    const line = runMain({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: other.keyFile })
    expect(line).toContain(`TLS_KEY_FILE=${JSON.stringify(other.keyFile)} does not belong to the certificate`)
  })
})

describe('backends over https://', () => {
  test("a backend's certificate is verified: untrusted gives 502; trusted through NODE_EXTRA_CA_CERTS, 200", async () => {
    const secure = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: { cert: certificate.cert, key: Bun.file(certificate.keyFile) },
      fetch: () => Response.json({ secure: true }),
    })
    const target = `https://127.0.0.1:${secure.port}`
    const untrusting = await startGatewayProcess({ RUNNER_URL: target })
    const trusting = await startGatewayProcess({ RUNNER_URL: target, NODE_EXTRA_CA_CERTS: certificate.certFile })
    try {
      const refused = await fetch(`${untrusting.url}/api/v1/runner/x`)
      expect(refused.status).toBe(502)
      expect(((await refused.json()) as { message: string }).message).toContain("the backend's TLS certificate was not accepted")
      const accepted = await fetch(`${trusting.url}/api/v1/runner/x`)
      expect(accepted.status).toBe(200)
      expect(await accepted.json()).toEqual({ secure: true })
    } finally {
      await untrusting.kill('SIGTERM')
      await trusting.kill('SIGTERM')
      secure.stop(true)
    }
  }, 30_000)
})
