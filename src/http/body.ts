/** Reading small request bodies (the gateway's own JSON APIs) with a hard size cap. */
import { GatewayError } from './errors'

/**
 * The body as text, refused with 413 past `limit` bytes — from `Content-Length` before reading
 * when it is declared, and while reading when it is not.
 * @example const text = await readBodyText(request, 64 * 1024)
 */
export async function readBodyText(request: Request, limit: number): Promise<string> {
  const tooLarge = () => new GatewayError('payload_too_large', `body larger than ${limit} bytes`)
  const declared = request.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) throw tooLarge()
  if (request.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body) {
    size += chunk.byteLength
    if (size > limit) throw tooLarge()
    chunks.push(chunk)
  }
  return new TextDecoder().decode(Buffer.concat(chunks))
}

/**
 * The body parsed as a JSON object, or 400.
 * @example const body = await readJsonObject(request, 64 * 1024)
 */
export async function readJsonObject(request: Request, limit: number): Promise<Record<string, unknown>> {
  const text = await readBodyText(request, limit)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new GatewayError('bad_request', 'the body must be a JSON object')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new GatewayError('bad_request', 'the body must be a JSON object')
  return value as Record<string, unknown>
}
