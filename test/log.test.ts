import { describe, expect, test } from 'bun:test'
import { BatchedLineWriter, createLogger } from '../src/ops/log'

describe('batched log lines', () => {
  test('lines wait for the interval, then go out in one write', async () => {
    const writes: string[] = []
    const writer = new BatchedLineWriter((text) => writes.push(text), 50)
    writer.write('{"a":1}\n')
    writer.write('{"b":2}\n')
    expect(writes).toEqual([])
    await Bun.sleep(120)
    expect(writes).toEqual(['{"a":1}\n{"b":2}\n'])
    writer.close()
  })

  test('a full batch is written at once, and flush() empties the rest', () => {
    const writes: string[] = []
    const writer = new BatchedLineWriter((text) => writes.push(text), 60_000, 10)
    writer.write('0123456789\n')
    expect(writes).toEqual(['0123456789\n'])
    writer.write('tail\n')
    writer.flush()
    expect(writes).toEqual(['0123456789\n', 'tail\n'])
    writer.close()
  })

  test('pino writes one JSON line per call with level as a word, through the batch', () => {
    const writes: string[] = []
    const writer = new BatchedLineWriter((text) => writes.push(text), 60_000)
    const logger = createLogger('info', writer)
    logger.info({ port: 1 }, 'hello')
    logger.debug('hidden')
    logger.flush()
    const line = JSON.parse(writes.join(''))
    expect(line).toMatchObject({ level: 'info', msg: 'hello', port: 1 })
    expect(typeof line.time).toBe('string')
    writer.close()
  })
})
