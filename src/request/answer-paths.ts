/**
 * The paths of the `hitl` service that receive answers (README, "Answer"): closed to the proxy,
 * so nobody answers around the client binding, the answer schema or the approvals by POSTing
 * to `/api/v1/hitl/responses` directly, nor through another service name that reaches the same
 * backend. A path is compared as route matching reads it (`config/route-paths.ts`: unreserved
 * escapes decoded, case folded, since backends may fold it); one that backends could read two
 * ways is refused too, and so is a segment with a suffix some frameworks strip
 * (`/responses.json` in Rails, a trailing `.` or space in IIS).
 */
import type { ServicePolicy } from '../config/policies'
import { pathSegments } from '../config/route-paths'

const PLACEHOLDER = '{question_id}'

export class AnswerPaths {
  /** Per segment of `HITL_RESPONSE_PATH`: its text, or a pattern where `{question_id}` stands for any id. */
  private readonly segments: (string | RegExp)[]

  /** @param template `HITL_RESPONSE_PATH`, e.g. `/responses` or `/questions/{question_id}/answer`. */
  constructor(template: string) {
    this.segments = (pathSegments(template.replaceAll(PLACEHOLDER, '\u0000'), false) ?? template.toLowerCase().split('/').slice(1)).map((segment) => {
      const text = segment.replaceAll('%00', '\u0000')
      if (!text.includes('\u0000')) return text
      const pattern = text
        .split('\u0000')
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.+')
      return new RegExp(`^${pattern}$`)
    })
  }

  /**
   * Whether a request path below the `hitl` service could reach an answer path.
   * @param rest the path after `/api/v1/hitl`, as received.
   * @example new AnswerPaths('/responses').covers('/Responses/') // true
   */
  covers(rest: string): boolean {
    const segments = pathSegments(rest, false)
    if (segments === null) return true
    if (segments.length !== this.segments.length) return false
    return this.segments.every((expected, i) => {
      const segment = segments[i]!
      if (typeof expected !== 'string') return expected.test(segment)
      return segment === expected || (segment.startsWith(expected) && SUFFIX.test(segment.slice(expected.length)))
    })
  }
}

/** What some backends strip from a segment before routing: a format suffix, trailing dots or spaces. */
const SUFFIX = /^(\.[^/]*|(\.|%20)+)$/

/**
 * The answer paths a request to `service` could reach: those of `hitl` itself, and of any
 * service with an instance on a `hitl` instance's origin whose base path leads to it.
 * @param template `HITL_RESPONSE_PATH`.
 * @example answerPathsOf(agent, hitl, '/responses') // [AnswerPaths for /responses] when both name one URL
 */
export function answerPathsOf(service: ServicePolicy, hitl: ServicePolicy | undefined, template: string): AnswerPaths[] {
  if (hitl === undefined) return []
  const prefixes = new Set<string>()
  for (const instance of service.instances) {
    for (const target of hitl.instances) {
      if (instance.origin !== target.origin) continue
      const base = instance.basePath
      if (target.basePath === base || target.basePath.startsWith(`${base}/`)) prefixes.add(target.basePath.slice(base.length))
    }
  }
  return [...prefixes].map((prefix) => new AnswerPaths(`${prefix}${template}`))
}
