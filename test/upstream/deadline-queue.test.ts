/** The deadline queue: one timer for every exchange's header deadline and client watch. */
import { afterEach, describe, expect, test } from 'bun:test'
import { type Deadline, DeadlineQueue } from '../../src/upstream/deadlines'

class Entry implements Deadline {
  readonly startedAt = performance.now()
  prev: Deadline | null = null
  next: Deadline | null = null
  queued = false
  expiredAt: number | undefined
  watchedAt: number | undefined
  watchCount = 0

  expire(): void {
    this.expiredAt = performance.now()
  }

  watchClient(): void {
    this.watchCount++
    this.watchedAt = performance.now()
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

describe('the deadline queue', () => {
  test('entries expire in arrival order, not before their deadline', async () => {
    const q = queue(150, 10_000)
    const first = new Entry()
    q.add(first)
    await Bun.sleep(30)
    const second = new Entry()
    q.add(second)
    await Bun.sleep(60)
    expect(first.expiredAt).toBeUndefined()
    await Bun.sleep(300)
    expect(first.expiredAt! - first.startedAt).toBeGreaterThanOrEqual(149)
    expect(second.expiredAt! - second.startedAt).toBeGreaterThanOrEqual(149)
    expect(second.expiredAt!).toBeGreaterThanOrEqual(first.expiredAt!)
    expect(q.length).toBe(0)
  })

  test('a removed entry never expires nor is watched, wherever it sat; removing twice is harmless', async () => {
    const q = queue(100, 50)
    const [head, middle, tail] = [new Entry(), new Entry(), new Entry()]
    for (const entry of [head, middle, tail]) q.add(entry)
    expect(q.length).toBe(3)
    q.remove(middle)
    q.remove(middle)
    expect(q.length).toBe(2)
    q.remove(head)
    q.remove(tail)
    expect(q.length).toBe(0)
    const survivor = new Entry()
    q.add(survivor)
    await Bun.sleep(300)
    for (const entry of [head, middle, tail]) expect([entry.expiredAt, entry.watchedAt]).toEqual([undefined, undefined])
    expect(survivor.expiredAt).toBeDefined()
  })

  test('each entry is watched once, after watchAfterMs and before it expires', async () => {
    const q = queue(400, 50)
    const entries = [new Entry(), new Entry(), new Entry()]
    for (const entry of entries) q.add(entry)
    await Bun.sleep(20)
    expect(entries.every((e) => e.watchCount === 0)).toBe(true)
    await Bun.sleep(200)
    for (const entry of entries) {
      expect(entry.watchCount).toBe(1)
      expect(entry.watchedAt! - entry.startedAt).toBeGreaterThanOrEqual(49)
      expect(entry.expiredAt).toBeUndefined()
    }
    await Bun.sleep(400)
    for (const entry of entries) {
      expect(entry.watchCount).toBe(1)
      expect(entry.expiredAt).toBeDefined()
    }
  })

  test('an entry added while only a far deadline is armed is still watched on time', async () => {
    const q = queue(10_000, 30)
    const old = new Entry()
    q.add(old)
    await Bun.sleep(100)
    expect(old.watchCount).toBe(1)
    // The timer now waits for old's deadline, 10 s away; the newcomer must not wait that long.
    const newcomer = new Entry()
    q.add(newcomer)
    await Bun.sleep(200)
    expect(newcomer.watchCount).toBe(1)
    q.remove(old)
    q.remove(newcomer)
  })

  test('close stops the timer: queued entries then never expire', async () => {
    const q = queue(50, 10_000)
    const entry = new Entry()
    q.add(entry)
    q.close()
    await Bun.sleep(200)
    expect(entry.expiredAt).toBeUndefined()
  })
})
