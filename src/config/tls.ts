/**
 * HTTPS on `PORT` (README, "TLS"): the certificate and key files, read once at start and checked
 * so that a wrong setting stops the start with one line instead of failing every handshake.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError, type TlsConfig } from './settings'

/** What `Bun.serve({ tls })` takes: PEM text. */
export interface TlsMaterial {
  cert: string
  key: string
}

/** RFC 7468 §2: a PEM file holds `-----BEGIN <label>-----` blocks. */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----/

/**
 * Reads and checks both files: readable, PEM, a certificate and a private key that belong together.
 * @example Bun.serve({ tls: loadTls({ certFile: 'cert.pem', keyFile: 'key.pem' }), fetch })
 * @throws ConfigError naming the variable and the path.
 */
export function loadTls(tls: TlsConfig): TlsMaterial {
  const cert = readPem('TLS_CERT_FILE', tls.certFile)
  const key = readPem('TLS_KEY_FILE', tls.keyFile)
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch (error) {
    throw new ConfigError(`TLS_CERT_FILE=${JSON.stringify(tls.certFile)} is not a PEM certificate (${(error as Error).message})`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (error) {
    throw new ConfigError(`TLS_KEY_FILE=${JSON.stringify(tls.keyFile)} is not an unencrypted PEM private key (${(error as Error).message})`)
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(`TLS_KEY_FILE=${JSON.stringify(tls.keyFile)} does not belong to the certificate in TLS_CERT_FILE=${JSON.stringify(tls.certFile)}`)
  }
  return { cert, key }
}

function readPem(variable: string, path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`${variable}=${JSON.stringify(path)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  if (!PEM_BLOCK.test(text)) throw new ConfigError(`${variable}=${JSON.stringify(path)} is not a PEM file (no -----BEGIN ...----- line)`)
  return text
}
