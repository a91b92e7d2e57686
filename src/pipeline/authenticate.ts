/**
 * Step 4: may this client do this? (README, "Authentication" and "Publish"). Publishing needs
 * `PUBLISH_TOKEN` (without one, a loopback peer). With authentication on, every other route
 * but health, readiness and metrics needs a valid token, unknown paths included, so nothing
 * about the gateway is learnt without one.
 */
import type { Authenticator } from '../auth/authenticator'
import type { PublisherAuth } from '../events/publisher-auth'
import type { RequestContext } from './context'

/**
 * Sets `ctx.principal` when authentication is on; waits only when a token must be verified.
 * @throws GatewayError 401 or 403.
 */
export function authenticate(ctx: RequestContext, publisherAuth: PublisherAuth, authenticator: Authenticator | null): void | Promise<void> {
  if (ctx.isPublish) {
    try {
      publisherAuth.authorize(ctx)
    } catch (error) {
      ctx.answeredEarly = true
      throw error
    }
    return
  }
  if (authenticator === null || ctx.kind === 'ops') return
  return authenticator.authenticate(ctx)
}
