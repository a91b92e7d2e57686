/**
 * `DeadlineQueue` on its own, with fake entries that record when they were expired and when their
 * client started being watched. Every "not before" is checked on the recorded timestamps (the
 * queue compares against the same `performance.now()` clock), and every "by then" is polled with a
 * generous limit, so a loaded machine delays the tests without failing them.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { type Deadline, DeadlineQueue } from '../../src/upstream/deadlines'
import { waitFor } from '../helpers/wait'

/** A queue entry that records what the queue did to it, in a log shared by its test. */
class FakeExchange implements Deadline {
  readonly startedAt = performance.now()
  prev: Deadline | null = null
  next: Deadline | null = null
  queued = false
  readonly expiredAt: number[] = []
  readonly watchedAt: number[] = []

  constructor(
    readonly label: string,
    private readonly log: string[] = [],
  ) {}

  expire(): void {
    this.expiredAt.push(performance.now())
    this.log.push(`expire ${this.label}`)
  }

  watchClient(): void {
    this.watchedAt.push(performance.now())
    this.log.push(`watch ${this.label}`)
  }

  get touched(): boolean {
    return this.expiredAt.length > 0 || this.watchedAt.length > 0
  }
}

const queues: DeadlineQueue[] = []

function queue(timeoutMs: number, watchAfterMs: number): DeadlineQueue {
  const created = new DeadlineQueue(timeoutMs, watchAfterMs)
  queues.push(created)
  return created
}

afterEach(() => {
  for (const q of queues.splice(0)) q.close()
})


/** Float noise between two `performance.now()` readings; the queue itself never fires early. */
const EPSILON_MS = 0.5

describe('expiry', () => {
  test('entries expire in arrival order, each once and never before timeoutMs after its start', async () => {
    const log: string[] = []
    const q = queue(500, 60_000)
    const entries = ['a', 'b', 'c'].map((label) => new FakeExchange(label, log))
    for (const entry of entries) {
      q.add(entry)
      await Bun.sleep(20)
    }
    // Well before any deadline (a quarter of it): nothing has expired, everything is still queued.
    await Bun.sleep(70)
    expect(log).toEqual([])
    expect(q.length).toBe(3)

    expect(await waitFor(() => q.length === 0)).toBe(true)
    expect(log).toEqual(['expire a', 'expire b', 'expire c'])
    for (const entry of entries) {
      expect(entry.expiredAt.length).toBe(1)
      expect(entry.expiredAt[0]! - entry.startedAt).toBeGreaterThanOrEqual(500 - EPSILON_MS)
      expect(entry.queued).toBe(false)
    }
  })

  test('an entry added after the queue drained still expires', async () => {
    const q = queue(100, 60_000)
    const first = new FakeExchange('first')
    q.add(first)
    expect(await waitFor(() => first.expiredAt.length === 1)).toBe(true)
    expect(q.length).toBe(0)

    const second = new FakeExchange('second')
    q.add(second)
    expect(await waitFor(() => second.expiredAt.length === 1)).toBe(true)
    expect(second.expiredAt[0]! - second.startedAt).toBeGreaterThanOrEqual(100 - EPSILON_MS)
    expect(first.expiredAt.length).toBe(1)
  })
})

describe('removal', () => {
  test('removed entries (middle, head, tail) never expire nor are watched; the rest still are, in order', async () => {
    const log: string[] = []
    const q = queue(600, 50)
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((label) => new FakeExchange(label, log)) as [
      FakeExchange,
      FakeExchange,
      FakeExchange,
      FakeExchange,
      FakeExchange,
    ]
    for (const entry of [a, b, c, d, e]) q.add(entry)
    expect(q.length).toBe(5)

    q.remove(c) // middle
    expect(q.length).toBe(4)
    q.remove(c) // again: harmless
    expect(q.length).toBe(4)
    q.remove(a) // head, which is also the oldest entry not watched yet
    expect(q.length).toBe(3)
    q.remove(e) // tail
    expect(q.length).toBe(2)
    for (const removed of [a, c, e]) expect(removed.queued).toBe(false)

    expect(await waitFor(() => q.length === 0)).toBe(true)
    expect(log).toEqual(['watch b', 'watch d', 'expire b', 'expire d'])
    // A while longer: the removed entries stay untouched.
    await Bun.sleep(150)
    for (const removed of [a, c, e]) expect(removed.touched).toBe(false)
    expect(log).toEqual(['watch b', 'watch d', 'expire b', 'expire d'])
  })

  test('an entry removed after its client is watched never expires; the one behind it still does', async () => {
    const q = queue(800, 50)
    const first = new FakeExchange('first')
    const second = new FakeExchange('second')
    q.add(first)
    q.add(second)
    expect(await waitFor(() => first.watchedAt.length === 1 && second.watchedAt.length === 1)).toBe(true)
    q.remove(first)
    expect(q.length).toBe(1)

    expect(await waitFor(() => second.expiredAt.length === 1)).toBe(true)
    await Bun.sleep(100)
    expect(first.expiredAt).toEqual([])
    expect(first.watchedAt.length).toBe(1)
  })

  test('removing an entry that already expired, or was never added, changes nothing', async () => {
    const q = queue(50, 60_000)
    const expired = new FakeExchange('expired')
    q.add(expired)
    expect(await waitFor(() => expired.expiredAt.length === 1)).toBe(true)
    const stranger = new FakeExchange('stranger')
    const live = new FakeExchange('live')
    q.add(live)

    q.remove(expired)
    q.remove(stranger)
    expect(q.length).toBe(1)
    expect(await waitFor(() => live.expiredAt.length === 1)).toBe(true)
    expect(q.length).toBe(0)
    expect(expired.expiredAt.length).toBe(1)
    expect(stranger.touched).toBe(false)
  })

  test('a queue emptied by removals accepts new entries and handles them normally', async () => {
    const q = queue(500, 50)
    const gone = [new FakeExchange('x'), new FakeExchange('y')]
    for (const entry of gone) q.add(entry)
    for (const entry of gone) q.remove(entry)
    expect(q.length).toBe(0)

    const fresh = new FakeExchange('fresh')
    q.add(fresh)
    expect(q.length).toBe(1)
    expect(await waitFor(() => fresh.expiredAt.length === 1)).toBe(true)
    expect(fresh.watchedAt.length).toBe(1)
    expect(fresh.watchedAt[0]!).toBeLessThanOrEqual(fresh.expiredAt[0]!)
    for (const entry of gone) expect(entry.touched).toBe(false)
  })
})

describe('client watch', () => {
  test('each entry is watched once, in order, after watchAfterMs and before it expires', async () => {
    const log: string[] = []
    const q = queue(1_000, 100)
    const entries = ['a', 'b', 'c'].map((label) => new FakeExchange(label, log))
    for (const entry of entries) {
      q.add(entry)
      await Bun.sleep(20)
    }

    expect(await waitFor(() => entries.every((e) => e.watchedAt.length > 0))).toBe(true)
    expect(log).toEqual(['watch a', 'watch b', 'watch c'])
    for (const entry of entries) {
      expect(entry.watchedAt[0]! - entry.startedAt).toBeGreaterThanOrEqual(100 - EPSILON_MS)
      expect(entry.expiredAt).toEqual([])
    }

    expect(await waitFor(() => q.length === 0)).toBe(true)
    expect(log).toEqual(['watch a', 'watch b', 'watch c', 'expire a', 'expire b', 'expire c'])
    for (const entry of entries) {
      expect(entry.watchedAt.length).toBe(1)
      expect(entry.expiredAt.length).toBe(1)
      expect(entry.watchedAt[0]!).toBeLessThan(entry.expiredAt[0]!)
    }
  })

  test('an entry removed before watchAfterMs is never watched, while its neighbours are', async () => {
    const q = queue(60_000, 80)
    const [before, removed, after] = [new FakeExchange('before'), new FakeExchange('removed'), new FakeExchange('after')]
    for (const entry of [before, removed, after]) q.add(entry)
    await Bun.sleep(10)
    q.remove(removed)

    expect(await waitFor(() => before.watchedAt.length === 1 && after.watchedAt.length === 1)).toBe(true)
    await Bun.sleep(100)
    expect(removed.touched).toBe(false)
    expect([before.watchedAt.length, after.watchedAt.length]).toEqual([1, 1])
    expect(q.length).toBe(2)
  })

  test('an entry added while the queue only waits for a far deadline is still watched on time', async () => {
    // The first entry is watched, then the only thing left to wait for is its deadline a minute away.
    const q = queue(60_000, 50)
    const old = new FakeExchange('old')
    q.add(old)
    expect(await waitFor(() => old.watchedAt.length === 1)).toBe(true)
    await Bun.sleep(30)

    const newcomer = new FakeExchange('newcomer')
    q.add(newcomer)
    // Within seconds, not at old's deadline a minute later.
    expect(await waitFor(() => newcomer.watchedAt.length === 1, 3_000)).toBe(true)
    expect(newcomer.watchedAt[0]! - newcomer.startedAt).toBeGreaterThanOrEqual(50 - EPSILON_MS)
    expect(old.watchedAt.length).toBe(1)
    expect(q.length).toBe(2)
  })

  test('an entry added after a far-deadline queue was emptied is still watched on time', async () => {
    // The timer is left armed for a deadline a minute away, with nothing queued any more.
    const q = queue(60_000, 50)
    const old = new FakeExchange('old')
    q.add(old)
    expect(await waitFor(() => old.watchedAt.length === 1)).toBe(true)
    q.remove(old)
    expect(q.length).toBe(0)

    const newcomer = new FakeExchange('newcomer')
    q.add(newcomer)
    expect(await waitFor(() => newcomer.watchedAt.length === 1, 3_000)).toBe(true)
    expect(newcomer.watchedAt[0]! - newcomer.startedAt).toBeGreaterThanOrEqual(50 - EPSILON_MS)
    expect(newcomer.expiredAt).toEqual([])
    expect(old.expiredAt).toEqual([])
  })
})

describe('close', () => {
  test('close() stops the timer: queued entries then never expire nor are watched', async () => {
    const q = queue(100, 50)
    const entries = [new FakeExchange('a'), new FakeExchange('b')]
    for (const entry of entries) q.add(entry)
    q.close()
    // Four times the deadline, and a control queue that does expire in the meantime.
    const control = queue(100, 50)
    const witness = new FakeExchange('witness')
    control.add(witness)
    expect(await waitFor(() => witness.expiredAt.length === 1)).toBe(true)
    await Bun.sleep(Math.max(0, 400 - (performance.now() - entries[0]!.startedAt)))

    for (const entry of entries) expect(entry.touched).toBe(false)
    expect(q.length).toBe(2)
  })

  test('an entry added after close() does not start the timer again', async () => {
    const q = queue(50, 20)
    const before = new FakeExchange('before')
    q.add(before)
    q.close()
    const after = new FakeExchange('after')
    q.add(after)
    await Bun.sleep(250)
    expect(before.touched).toBe(false)
    expect(after.touched).toBe(false)
  })

  test('close() on an idle queue, or twice, is harmless', () => {
    const q = queue(100, 50)
    q.close()
    q.close()
    expect(q.length).toBe(0)
  })
})
