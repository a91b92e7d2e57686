/**
 * Step 4: may this client do this? (README, "Authentication", "Publish" and "Policies").
 * Publishing needs `PUBLISH_TOKEN` (without one, a backend on this host). With authentication
 * on, every other route but health, readiness and metrics needs a valid token, unknown paths
 * included, so nothing about the gateway is learnt without one; a proxied route's policy may
 * make it optional or off, and may require claims. The event routes bind the token to their
 * `:client_id` whatever a policy says.
 */
import type { Authenticator } from '../auth/authenticator'
import type { PublisherAuth } from '../auth/publisher-auth'
import type { Principal } from '../auth/token-verifier'
import { GatewayError } from '../http/errors'
import { clientIdOf } from '../request/client-id'
import type { RequestContext } from '../request/context'

/**
 * Sets `ctx.principal` when a token was verified; waits only when a token must be verified.
 * @throws GatewayError 401 or 403 (and 400 for an event route's `:client_id` that is not one).
 */
export function authenticate(ctx: RequestContext, publisherAuth: PublisherAuth, authenticator: Authenticator | null): void | Promise<void> {
  const route = ctx.route
  if (route.admission === 'none') return
  if (route.admission === 'publisher') return refusedEarly(ctx, () => publisherAuth.authorize(ctx))
  if (authenticator === null) return
  const policy = ctx.active!.policy
  // The gateway's own routes keep the environment's rule: a token is required.
  const mode = route.kind === 'proxy' ? policy.auth : 'required'
  if (mode === 'off') return
  const verified = refusedEarly(ctx, () => authenticator.authenticate(ctx, mode))
  if (verified instanceof Promise) {
    return verified.then(
      (principal) => admit(ctx, principal, authenticator),
      (error) => {
        ctx.answeredEarly = true
        throw error
      },
    )
  }
  admit(ctx, verified, authenticator)
}

/** The token is good (or optional and absent): the route's claim rules and client binding. */
function admit(ctx: RequestContext, principal: Principal | undefined, authenticator: Authenticator): void {
  ctx.principal = principal
  const require = ctx.active!.policy.require
  if (require.length > 0) refusedEarly(ctx, () => (principal === undefined ? throwing(authenticator.missing()) : authenticator.requireClaims(principal, require)))
  if (ctx.route.bindsClient) {
    const clientId = clientIdOf(ctx)
    refusedEarly(ctx, () => authenticator.requireClient(principal, clientId))
  }
}

/** Runs `check`; a refusal it throws was the gateway's answer before the route's (counted as `gateway`). */
function refusedEarly<T>(ctx: RequestContext, check: () => T): T {
  try {
    return check()
  } catch (error) {
    if (error instanceof GatewayError) ctx.answeredEarly = true
    throw error
  }
}

function throwing(error: Error): never {
  throw error
}
