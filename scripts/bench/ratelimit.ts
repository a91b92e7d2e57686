/**
 * Rate-limiter micro-benchmark: decisions per second, and heap bytes per tracked address.
 * Prints one JSON line.
 */
import { heapStats } from 'bun:jsc'
import { TokenBucketLimiter } from '../../src/ratelimit/token-bucket'

const quick = process.argv.includes('--quick')
const DISTINCT = 10_000
const DECISIONS = quick ? 5_000_000 : 20_000_000
const TRACKED = 100_000

function decisionsPerSecond(): number {
  const limiter = new TokenBucketLimiter({ capacity: 1_000_000_000, perMinute: 1_000_000_000 })
  const keys = Array.from({ length: DISTINCT }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  let allowed = 0
  for (let i = 0; i < 1_000_000; i++) if (limiter.take(keys[i % DISTINCT]!).allowed) allowed++ // warm-up
  const started = performance.now()
  for (let i = 0; i < DECISIONS; i++) if (limiter.take(keys[i % DISTINCT]!).allowed) allowed++
  const seconds = (performance.now() - started) / 1000
  if (allowed === 0) throw new Error('nothing allowed')
  return DECISIONS / seconds
}

function heapBytes(): number {
  Bun.gc(true)
  return heapStats().heapSize
}

function bytesPerAddress(): number {
  const limiter = new TokenBucketLimiter({ capacity: 1000, perMinute: 1000, maxTracked: TRACKED + 1 })
  const before = heapBytes()
  // The keys are made here, so the strings the map keeps count against the limiter.
  for (let i = 0; i < TRACKED; i++) limiter.take(`203.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  const after = heapBytes()
  if (limiter.size !== TRACKED) throw new Error(`tracked ${limiter.size}`)
  return (after - before) / TRACKED
}

console.log(JSON.stringify({ decisionsPerSecond: Math.round(decisionsPerSecond()), bytesPerAddress: Math.round(bytesPerAddress()), trackedForMemory: TRACKED }))
