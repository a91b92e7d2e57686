/**
 * Frames of events read back from Redis, shared between streams (README, "Subscribe"): every
 * stream that replays one stored event queues the same bytes, so a thousand streams opening
 * with `Last-Event-ID: 0` hold one copy of the history, not a thousand. And what this gateway
 * holds framed already need not come from Redis again: a read names what it holds
 * (`held`), and Redis sends only the rest.
 *
 * Frames are held weakly: a frame that no stream holds any more is collected, and its entry
 * goes with it, so the cache is never larger than what open streams keep anyway.
 */
import type { FramedEvent } from './broker'
import type { EventEnvelope } from './envelope'
import { frameEvent } from './sse'

interface SharedFrame {
  id: string
  frame: WeakRef<Uint8Array>
}

export class SharedFrames {
  /** Client id → place → frame. A place names one stored copy for good (see `framed`). */
  private readonly byClient = new Map<string, Map<string, SharedFrame>>()
  private readonly collected = new FinalizationRegistry<[clientId: string, place: string]>(([clientId, place]) => {
    const places = this.byClient.get(clientId)
    // A newer frame may have taken the place since: only a dead entry goes.
    if (places === undefined || places.get(place)?.frame.deref() !== undefined) return
    places.delete(place)
    if (places.size === 0) this.byClient.delete(clientId)
  })

  /**
   * Forgets every place. A place is unique only while Redis keeps its data and its clock: after
   * a reconnect (a restart, a failover) a place may name another event.
   */
  clear(): void {
    this.byClient.clear()
  }

  /** The places of `clientId` whose frames some stream still holds: Redis need not send them. */
  held(clientId: string): string[] {
    const places = this.byClient.get(clientId)
    if (places === undefined) return []
    const held: string[] = []
    for (const [place, shared] of places) if (shared.frame.deref() !== undefined) held.push(place)
    return held
  }

  /**
   * The framed event stored at `place`: the shared frame when a stream holds it, else framed
   * from `json`.
   * @param place a client's Redis stream entry id, or a question's order: never only an event
   *   id (a publisher's id can name another event of the same client later).
   * @param json the stored envelope, or '' when Redis left it out because it was `held`.
   * @returns undefined when it was left out and has been collected since: read it again, whole.
   * @example frames.framed('alice', '1700000000000-0', json)
   */
  framed(clientId: string, place: string, json: string): FramedEvent | undefined {
    let places = this.byClient.get(clientId)
    const shared = places?.get(place)
    const frame = shared?.frame.deref()
    if (frame !== undefined) return { id: shared!.id, frame }
    if (json === '') return undefined
    const envelope = JSON.parse(json) as EventEnvelope
    const framed = frameEvent(envelope)
    if (places === undefined) this.byClient.set(clientId, (places = new Map()))
    places.set(place, { id: envelope.id, frame: new WeakRef(framed) })
    this.collected.register(framed, [clientId, place])
    return { id: envelope.id, frame: framed }
  }
}
