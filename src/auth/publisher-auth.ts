/**
 * Who may publish (README, "Publish"): with `PUBLISH_TOKEN`, whoever presents it as a bearer
 * token; without one, only backends on the same host. That grant is judged on the socket peer
 * alone: a loopback peer that is a proxy (in `TRUST_PROXY`, or forwarding for someone, as its
 * `X-Forwarded-For`, `Forwarded` or `X-Real-IP` says) speaks for clients anywhere, and gets no
 * grant.
 */
import { timingSafeEqual } from 'node:crypto'
import { isLoopback } from '../http/client-ip'
import { GatewayError } from '../http/errors'

/** What a proxy adds when it forwards for a client elsewhere: such a request is not a backend's on this host. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip']

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
   * @param request `hasPublishToken`: what `presentsToken` said of the request.
   * @throws GatewayError 401 for a missing or wrong token, 403 for a publisher not on this host when no token is configured.
   */
  authorize(request: { hasPublishToken: boolean; peerIp: string; peerTrusted: boolean; headers: Headers }): void {
    if (this.expected === null) {
      if (!isLoopback(request.peerIp)) throw new GatewayError('forbidden', 'publishing is allowed from loopback only (no PUBLISH_TOKEN is configured)')
      if (request.peerTrusted || FORWARDING_HEADERS.some((name) => request.headers.has(name))) {
        throw new GatewayError('forbidden', 'publishing through a proxy needs PUBLISH_TOKEN: the loopback grant is for backends on this host only')
      }
      return
    }
    if (!request.hasPublishToken) {
      throw new GatewayError('unauthorized', 'publishing needs Authorization: Bearer <PUBLISH_TOKEN>', { 'www-authenticate': 'Bearer' })
    }
  }
}
