/** Self-signed certificates made by the test itself (`openssl`), for 127.0.0.1 and localhost. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Certificate {
  /** PEM file paths. */
  certFile: string
  keyFile: string
  /** The certificate's PEM text (it is its own CA). */
  cert: string
  remove(): void
}

/**
 * A P-256 key and a certificate valid for a day, with 127.0.0.1 and localhost as subject names.
 * @example const tls = makeCertificate(); Bun.serve({ tls: { cert: tls.cert, key: Bun.file(tls.keyFile) }, ... })
 */
export function makeCertificate(): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-tls-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const run = Bun.spawnSync(
    ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stderr: 'pipe' },
  )
  if (run.exitCode !== 0) throw new Error(`openssl failed: ${run.stderr.toString()}`)
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}
