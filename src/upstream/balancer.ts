/**
 * Least requests in flight with two random choices (Envoy's default, "power of two choices"):
 * pick two different instances at random and send to the one with fewer requests in flight.
 * A slow instance holds its requests longer, so it gets less new work; random pairs keep every
 * gateway from piling onto the same "least loaded" instance at once.
 */
import type { Instance } from './instance'

/**
 * @param candidates the instances a request may go to now (healthy, not yet tried for it).
 * @example pickLeastLoaded([a, b]) // the one of a and b with fewer requests in flight (either on a tie)
 */
export function pickLeastLoaded(candidates: readonly Instance[], random: () => number = Math.random): Instance | undefined {
  const count = candidates.length
  if (count <= 1) return candidates[0]
  // Two: both are the pair, in random order, so a tie goes either way.
  const first = count === 2 ? (random() < 0.5 ? 0 : 1) : Math.floor(random() * count)
  if (count === 2) {
    const a = candidates[first]!
    const b = candidates[1 - first]!
    return b.inFlight < a.inFlight ? b : a
  }
  // A second index, different from the first: one of the count - 1 others.
  const second = (first + 1 + Math.floor(random() * (count - 1))) % count
  const a = candidates[first]!
  const b = candidates[second]!
  return b.inFlight < a.inFlight ? b : a
}
