/**
 * `MAX_BODY_BYTES` for request bodies that declare no length (chunked uploads): counted as they
 * stream to the backend, and cut once they pass the limit. A declared `Content-Length` is
 * checked before the backend is contacted instead (README, "Reverse proxy").
 */
export class BodyLimit {
  exceeded = false

  constructor(readonly maxBytes: number) {}

  /** `body`, erroring once more than `maxBytes` have passed. */
  apply(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    let seen = 0
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          seen += chunk.byteLength
          if (seen <= this.maxBytes) return controller.enqueue(chunk)
          this.exceeded = true
          controller.error(new Error('request body too large'))
        },
      }),
    )
  }
}
