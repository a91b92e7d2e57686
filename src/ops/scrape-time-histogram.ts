/**
 * A histogram without labels whose observations are plain array increments, handed to
 * prom-client only when `/metrics` is scraped. prom-client's own `Histogram.observe` hashes its
 * labels and looks its bucket up on every call, which profiles put at about 1.5% of a proxied
 * request; this is registered as a custom metric through the registry's `registerMetric`.
 */
import type { Metric, MetricValueWithName, Registry } from 'prom-client'

/** What prom-client's registry reads from a metric when it scrapes. */
interface MetricSnapshot {
  name: string
  help: string
  type: 'histogram'
  values: MetricValueWithName<string>[]
  aggregator: 'sum'
}

export class ScrapeTimeHistogram {
  readonly type = 'histogram'
  /** How several processes' values combine (prom-client's aggregation). */
  readonly aggregator = 'sum'
  /** Observations per bucket, not cumulative; the last slot is `+Inf`. */
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  /**
   * @param upperBounds ascending bucket bounds (Prometheus `le`), `+Inf` implied.
   * @example new ScrapeTimeHistogram('x_seconds', 'help', [0.01, 0.1, 1], registry).observe(0.05)
   */
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    this.counts = new Float64Array(upperBounds.length + 1)
    registry.registerMetric(this as unknown as Metric)
  }

  observe(value: number): void {
    const bounds = this.upperBounds
    let bucket = 0
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++
    this.counts[bucket]!++
    this.sum += value
    this.count++
  }

  /** prom-client's view: cumulative `_bucket` lines, then `_sum` and `_count`. */
  async get(): Promise<MetricSnapshot> {
    const values: MetricValueWithName<string>[] = []
    let cumulative = 0
    this.upperBounds.forEach((le, bucket) => {
      cumulative += this.counts[bucket]!
      values.push({ labels: { le }, value: cumulative, metricName: `${this.name}_bucket` })
    })
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: `${this.name}_bucket` })
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` })
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` })
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset(): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }
}
