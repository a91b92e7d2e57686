/**
 * Who may publish (SPEC §6): with `PUBLISH_TOKEN`, whoever presents it as a bearer token;
 * without one, only loopback clients (backends on the same host).
 */
import { timingSafeEqual } from 'node:crypto'
import { isLoopback } from '../http/client-ip'
import { GatewayError } from '../http/errors'

/** The publish routes: `POST /api/v1/events` and `POST /api/v1/events/<client_id>`. */
const PUBLISH_PATH = /^\/api\/v1\/events(?:\/[^/]+)?$/

export class PublisherAuth {
  private readonly expected: Buffer | null

  constructor(token: string) {
    this.expected = token === '' ? null : Buffer.from(`Bearer ${token}`)
  }

  /** A publish request carrying the right token: exempt from rate limiting (SPEC §5). */
  isAuthenticatedPublish(request: Request, path: string): boolean {
    return request.method === 'POST' && PUBLISH_PATH.test(path) && this.hasToken(request)
  }

  /**
   * @throws GatewayError 401 for a missing or wrong token, 403 for a non-loopback client when no token is configured.
   */
  authorize(request: Request, clientIp: string): void {
    if (this.expected === null) {
      if (!isLoopback(clientIp)) throw new GatewayError('forbidden', 'publishing is allowed from loopback only (no PUBLISH_TOKEN is configured)')
      return
    }
    if (!this.hasToken(request)) {
      throw new GatewayError('unauthorized', 'publishing needs Authorization: Bearer <PUBLISH_TOKEN>', { 'www-authenticate': 'Bearer' })
    }
  }

  private hasToken(request: Request): boolean {
    if (this.expected === null) return false
    const presented = Buffer.from(request.headers.get('authorization') ?? '')
    return presented.length === this.expected.length && timingSafeEqual(presented, this.expected)
  }
}
