/**
 * The paths of the `hitl` service that receive answers (README, "Answer"): closed to the proxy,
 * so nobody answers around the client binding, the answer schema or the approvals by POSTing
 * to `/api/v1/hitl/responses` directly. A path is compared as route matching reads it
 * (`config/route-paths.ts`: unreserved escapes decoded, case folded, since backends may fold
 * it), and one that backends could read two ways is refused too: it might reach one of them.
 */
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
    return this.segments.every((expected, i) => (typeof expected === 'string' ? expected === segments[i] : expected.test(segments[i]!)))
  }
}
