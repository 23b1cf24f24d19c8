/**
 * Response bodies written as the request runs: server-sent events (`data: <json>\n\n` frames,
 * `data: [DONE]` at the end) and JSON whose headers go out before the body is ready. Both are a
 * ReadableStream we enqueue into, so the cancel callback tells us when the client went away.
 */
const encoder = new TextEncoder();

export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
};

/**
 * A JSON body sent early (see `DeferredJson`). `content-encoding: identity` keeps the runtime from
 * compressing it: a compressor holds small writes back, and the keep-alive writes must reach the
 * socket, since under wrangler dev a client that left is only noticed when a write to it fails.
 */
export const STREAMED_JSON_HEADERS: Record<string, string> = {
  "content-type": "application/json",
  "cache-control": "no-store",
  "content-encoding": "identity",
};

/**
 * Bytes written but not yet read by the runtime beyond which the client counts as gone. The runtime
 * reads a body as fast as the connection takes it, so a backlog this large (on top of the socket's own
 * buffers) means nobody is reading: under wrangler dev a client that disconnects sometimes leaves the
 * response pump stalled without cancelling the stream or firing request.signal (measured: 1 in 20
 * disconnects; the stream then held all 2000 of its chunks unread). Without this bound such a stream ran
 * to max_tokens, was billed `ok`, and held every byte in memory. 128 KiB is 700-1000 tokens of SSE;
 * a reader that falls that far behind a generation is not coming back.
 */
export const MAX_UNREAD_BYTES = 128 * 1024;

export class BodyChannel {
  readonly readable: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private open = true;

  constructor(private readonly onCancel: () => void) {
    // highWaterMark 0, sized in bytes: desiredSize is minus the bytes waiting to be read.
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        cancel: () => {
          this.open = false;
          onCancel();
        },
      },
      { highWaterMark: 0, size: (chunk) => chunk.byteLength },
    );
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Enqueues text; false once the client is gone (or has stopped reading: MAX_UNREAD_BYTES). */
  write(text: string): boolean {
    if (!this.open) return false;
    try {
      this.controller.enqueue(encoder.encode(text));
    } catch {
      this.open = false;
      return false;
    }
    if ((this.controller.desiredSize ?? 0) >= -MAX_UNREAD_BYTES) return true;
    this.open = false;
    this.controller.error(new Error("the client stopped reading"));
    this.onCancel();
    return false;
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    try {
      this.controller.close();
    } catch {
      // already closed by a cancel
    }
  }
}

export const sseFrame = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
export const SSE_DONE = "data: [DONE]\n\n";

export class SseChannel extends BodyChannel {
  /** Sends one `data:` event; false once the client is gone. */
  send(data: unknown): boolean {
    return this.write(sseFrame(data));
  }

  done(): boolean {
    return this.write(SSE_DONE);
  }
}
