/**
 * Readiness and graceful shutdown (README, "Operations"): on SIGTERM/SIGINT `/ready` turns 503, the listener
 * closes, in-flight requests get up to `drainMs` to finish, then the rest are cut.
 */

/** How long in-flight proxied requests may take to finish after a shutdown signal. */
export const DRAIN_MS = 10_000

interface StoppableServer {
  stop(closeActiveConnections?: boolean): Promise<void> | void
}

export type ShutdownHook = () => void | Promise<void>

export class Lifecycle {
  private draining = false
  private readonly hooks: ShutdownHook[] = []

  get ready(): boolean {
    return !this.draining
  }

  /** Runs when shutdown begins, before waiting for in-flight requests (event streams close here). */
  onShutdown(hook: ShutdownHook): void {
    this.hooks.push(hook)
  }

  /**
   * Stops taking connections, lets in-flight requests finish within `drainMs`, then closes the rest.
   * @returns whether everything finished in time.
   */
  async shutdown(server: StoppableServer, drainMs = DRAIN_MS): Promise<boolean> {
    if (this.draining) return false
    this.draining = true
    for (const hook of this.hooks) await hook()
    let timer: Timer | undefined
    const drained = await Promise.race([
      Promise.resolve(server.stop(false)).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), drainMs))),
    ])
    clearTimeout(timer)
    if (!drained) await server.stop(true)
    return drained
  }
}
