/**
 * The broker factory: the gateway holds a `Broker` and never knows which kind is behind it.
 * The embedded default keeps its state in this process (`MemoryBroker`); in cluster mode it is
 * shared through Redis (`RedisBroker`). Both report closed questions here, once each: the audit
 * line and the metrics (README, "Questions", audit).
 */
import type { Cluster } from '../cluster/cluster'
import type { Config } from '../config/settings'
import type { Logger } from '../ops/log'
import type { Metrics } from '../ops/metrics'
import type { Upstream } from '../upstream/upstream'
import type { Broker } from './broker'
import { deliverExpiry } from './hitl'
import type { Hub } from './hub'
import { MemoryBroker } from './memory-broker'
import type { ExpiryDelivery, QuestionSink } from './questions'
import { RedisBroker } from './redis-broker'

/** Time a hold or a claimed delivery lasts beyond the longest call to `hitl`, should its gateway die. */
const LEASE_MARGIN_MS = 10_000

export interface BrokerDependencies {
  config: Config
  hub: Hub
  metrics: Metrics
  logger: Logger
  cluster: Cluster | null
  /** The `hitl` service as the policies current now define it: answers and expiries go there. */
  hitl: () => Upstream
}

/** @example const broker = createBroker({ config, hub, metrics, logger, cluster, hitl: () => upstream }) */
export function createBroker({ config, hub, metrics, logger, cluster, hitl }: BrokerDependencies): Broker {
  const sink = questionSink(metrics, logger)
  const deliver = (delivery: ExpiryDelivery) => deliverExpiry(hitl(), config.events.hitlResponsePath, delivery)
  const gaveUp = (delivery: ExpiryDelivery) =>
    logger.error({ question_id: delivery.questionId, idempotency_key: delivery.key }, 'Question expiry given up: hitl did not take it within QUESTION_TTL_MS of the deadline')
  if (cluster === null) return new MemoryBroker({ hub, config: config.events, metrics, sink, deliver, gaveUp })
  return new RedisBroker({
    hub,
    config: config.events,
    link: cluster.link,
    presence: cluster.presence,
    prefix: cluster.prefix,
    metrics,
    logger,
    sink,
    deliver,
    gaveUp,
    leaseMs: () => hitl().longestCallMs + LEASE_MARGIN_MS,
  })
}

/** The audit line and the metrics of questions. */
function questionSink(metrics: Metrics, logger: Logger): QuestionSink {
  return {
    published: () => metrics.questions.inc({ outcome: 'published' }),
    closed: ({ outcome, questionId, clientIds, subjects, openMs }) => {
      metrics.questions.inc({ outcome })
      metrics.questionOpen.observe(openMs / 1000)
      const who = clientIds.length === 1 ? { client_id: clientIds[0] } : { client_ids: clientIds }
      logger.info({ ...who, question_id: questionId, outcome, subjects, open_ms: openMs }, 'Question closed')
    },
  }
}
