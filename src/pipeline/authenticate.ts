/**
 * Step 4: may this client do this? Today only publishing is restricted (README, "Publish"):
 * with `PUBLISH_TOKEN` set the publisher must present it; without one only loopback peers may
 * publish. Every other route is open.
 */
import type { PublisherAuth } from '../events/publisher-auth'
import type { RequestContext } from './context'

/** @throws GatewayError 401 or 403 for a publisher that may not publish. */
export function authenticate(ctx: RequestContext, publisherAuth: PublisherAuth): void {
  if (!ctx.isPublish) return
  try {
    publisherAuth.authorize(ctx.hasPublishToken, ctx.clientIp)
  } catch (error) {
    ctx.answeredEarly = true
    throw error
  }
}
