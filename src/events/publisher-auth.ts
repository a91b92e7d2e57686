/**
 * Who may publish (README, "Publish"): with `PUBLISH_TOKEN`, whoever presents it as a bearer
 * token; without one, only loopback clients (backends on the same host).
 */
import { timingSafeEqual } from 'node:crypto'
import { isLoopback } from '../http/client-ip'
import { GatewayError } from '../http/errors'

export class PublisherAuth {
  private readonly expected: Buffer | null

  constructor(token: string) {
    this.expected = token === '' ? null : Buffer.from(`Bearer ${token}`)
  }

  /** Whether `request` carries `Authorization: Bearer <PUBLISH_TOKEN>` (never true when none is configured). */
  presentsToken(request: Request): boolean {
    if (this.expected === null) return false
    const presented = Buffer.from(request.headers.get('authorization') ?? '')
    return presented.length === this.expected.length && timingSafeEqual(presented, this.expected)
  }

  /**
   * @param hasToken what `presentsToken` said of the request.
   * @throws GatewayError 401 for a missing or wrong token, 403 for a non-loopback client when no token is configured.
   */
  authorize(hasToken: boolean, clientIp: string): void {
    if (this.expected === null) {
      if (!isLoopback(clientIp)) throw new GatewayError('forbidden', 'publishing is allowed from loopback only (no PUBLISH_TOKEN is configured)')
      return
    }
    if (!hasToken) {
      throw new GatewayError('unauthorized', 'publishing needs Authorization: Bearer <PUBLISH_TOKEN>', { 'www-authenticate': 'Bearer' })
    }
  }
}
