/**
 * Server-sent events out of the worker: `data: <json>\n\n` frames, `data: [DONE]` at the end.
 * A ReadableStream we enqueue into, so the cancel callback tells us when the client went away.
 */
const encoder = new TextEncoder();

export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
};

export class SseChannel {
  readonly readable: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private open = true;

  constructor(onCancel: () => void) {
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.open = false;
        onCancel();
      },
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Sends one `data:` event; false once the client is gone. */
  send(data: unknown): boolean {
    return this.raw(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): boolean {
    return this.raw("data: [DONE]\n\n");
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

  private raw(frame: string): boolean {
    if (!this.open) return false;
    try {
      this.controller.enqueue(encoder.encode(frame));
      return true;
    } catch {
      this.open = false;
      return false;
    }
  }
}
