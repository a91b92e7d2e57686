/** The Redis link on its own: never waits for a Redis that is not there, and notices one that hangs. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { RedisLink, RedisScript, RedisTimeout, RedisUnavailable } from '../../src/cluster/redis-link'
import { createLogger } from '../../src/ops/log'
import { Metrics } from '../../src/ops/metrics'
import { closedPort } from '../helpers/backend'
import { type TestRedis, startRedis } from '../helpers/redis'
import { waitFor } from '../helpers/wait'

let redis: TestRedis
const lines: { level: string; msg: string }[] = []
const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) })

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})

async function metric(metrics: Metrics, name: string): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith(name))
}

describe('RedisLink', () => {
  test('a Redis that is not there: commands are refused at once, never queued', async () => {
    const metrics = new Metrics()
    const link = new RedisLink({ url: `redis://127.0.0.1:${await closedPort()}`, logger, metrics })
    link.start()
    const started = performance.now()
    await expect(link.send('PING', [])).rejects.toBeInstanceOf(RedisUnavailable)
    expect(performance.now() - started).toBeLessThan(100)
    expect(link.isUp).toBe(false)
    expect(await metric(metrics, 'gateway_redis_connected')).toContain('gateway_redis_connected 0')
    link.close()
  })

  test('runs scripts by SHA, loading them after a SCRIPT FLUSH; reports its state and latency', async () => {
    const metrics = new Metrics()
    const link = new RedisLink({ url: redis.url, logger, metrics })
    link.start()
    expect(await waitFor(() => link.isUp, 10_000)).toBe(true)
    const script = new RedisScript(`return ARGV[1] .. KEYS[1]`)
    expect(await link.eval(script, ['k'], ['v'])).toBe('vk')
    await redis.cli('SCRIPT', 'FLUSH')
    expect(await link.eval(script, ['k2'], ['v'])).toBe('vk2')
    await expect(link.send('NOT-A-COMMAND', [])).rejects.toThrow()
    expect(link.isUp).toBe(true)
    expect(await metric(metrics, 'gateway_redis_connected')).toContain('gateway_redis_connected 1')
    expect(await metric(metrics, 'gateway_redis_command_errors_total')).toContain('gateway_redis_command_errors_total{kind="server"} 1')
    expect((await metric(metrics, 'gateway_redis_command_duration_seconds_count'))[0]).toMatch(/ [1-9]\d*$/)
    link.close()
  })

  test('a hung Redis: the command times out, the link checks itself and goes down, and comes back when Redis does', async () => {
    const metrics = new Metrics()
    const link = new RedisLink({ url: redis.url, logger, metrics, commandTimeoutMs: 300, checkIntervalMs: 100 })
    let reconnects = 0
    link.onReconnect(() => reconnects++)
    const messages: string[] = []
    await link.subscribe('gw-test:channel', (message) => messages.push(message))
    link.start()
    expect(await waitFor(() => link.isUp, 10_000)).toBe(true)
    expect(reconnects).toBe(1)
    redis.pause()
    try {
      const started = performance.now()
      // The command may have run: a timeout says so, rather than "unavailable".
      await expect(link.send('PING', [])).rejects.toBeInstanceOf(RedisTimeout)
      expect(performance.now() - started).toBeLessThan(1_000)
      // The missed deadline made the link check itself: its PING goes unanswered too, and the link is down.
      expect(await waitFor(() => !link.isUp, 2_000)).toBe(true)
      const refusedAt = performance.now()
      await expect(link.send('PING', [])).rejects.toBeInstanceOf(RedisUnavailable)
      expect(performance.now() - refusedAt).toBeLessThan(100)
      expect(await metric(metrics, 'gateway_redis_command_errors_total')).toContain('gateway_redis_command_errors_total{kind="timeout"} 1')
    } finally {
      redis.resume()
    }
    expect(await waitFor(() => link.isUp, 5_000)).toBe(true)
    expect(await metric(metrics, 'gateway_redis_connected')).toContain('gateway_redis_connected 1')
    expect(reconnects).toBe(2)
    // The subscription is made again on the new connection, once.
    await redis.cli('PUBLISH', 'gw-test:channel', 'after')
    expect(await waitFor(() => messages.length > 0)).toBe(true)
    await Bun.sleep(100)
    expect(messages).toEqual(['after'])
    link.close()
  })

  test('a connection that goes silent is noticed even while commands keep flowing on the other', async () => {
    // A relay that can freeze only the subscriber's connection (the one that said SUBSCRIBE).
    let frozen = false
    const relay = net.createServer((client) => {
      const upstream = net.connect(redis.port, '127.0.0.1')
      let subscriber = false
      client.on('data', (data) => {
        if (data.toString('latin1').toUpperCase().includes('SUBSCRIBE')) subscriber = true
        if (!(subscriber && frozen)) upstream.write(data)
      })
      upstream.on('data', (data) => {
        if (!(subscriber && frozen)) client.write(data)
      })
      for (const socket of [client, upstream]) socket.on('error', () => {})
      client.on('close', () => upstream.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const link = new RedisLink({ url: `redis://127.0.0.1:${(relay.address() as net.AddressInfo).port}`, logger, metrics: new Metrics() })
    try {
      await link.subscribe('gw-test:frozen', () => {})
      link.start()
      expect(await waitFor(() => link.isUp, 10_000)).toBe(true)
      // Silent: the subscriber's connection hangs while commands keep flowing on the other.
      frozen = true
      const traffic = setInterval(() => void link.send('PING', []).catch(() => {}), 50)
      try {
        expect(await waitFor(() => !link.isUp, 5_000)).toBe(true)
      } finally {
        clearInterval(traffic)
      }
    } finally {
      link.close()
      relay.close()
    }
  }, 30_000)
})
