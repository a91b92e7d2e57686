/** Waiting for something that happens on its own time, without asserting how long it takes. */

/**
 * Polls `condition` every 10 ms for up to `limitMs`; the caller asserts on the outcome.
 * @example expect(await waitFor(() => seen.length > 0)).toBe(true)
 * @example expect(await waitFor(async () => (await openStreams(gw.gateway)) === 0)).toBe(true)
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, limitMs = 3_000): Promise<boolean> {
  const giveUpAt = performance.now() + limitMs
  while (!(await condition())) {
    if (performance.now() > giveUpAt) return false
    await Bun.sleep(10)
  }
  return true
}
