/**
 * A test double of the GPU backend (contract/wire.ts), installed as the worker's outbound fetch.
 * Unit tests only: the real backend is exercised by test/node/e2e-worker.test.ts.
 *
 * Each replica host has a behaviour; generated text is emitted as SentencePiece byte tokens
 * (id = 3 + byte), so any ASCII/UTF-8 script round-trips through the edge detokenizer exactly.
 */
import { vi } from "vitest";
import type { CancelRequest, EmbedRequest, FinishReason, GenerateEvent, GenerateRequest } from "../../contract/wire";

/** Holds the stream once `after` tokens were sent, until `open` resolves (the test's event, not a timer). */
export interface Gate {
  after: number;
  open: Promise<void>;
}

export type Behaviour =
  /** `lag`: tokens still generated after a /v1/cancel arrives (a step in flight); default 0. */
  | { kind: "ok"; text?: string; chunk?: number; cached?: number; delayMs?: number; lag?: number; gate?: Gate }
  | { kind: "down" }
  | { kind: "status"; status: number; code?: string }
  | { kind: "error-first" }
  | { kind: "break-after"; text: string; gate?: Gate }
  /** /v1/embed answers only when /v1/cancel names it: 409 with `computed` tokens (like the real backend). */
  | { kind: "embed-held"; computed: number }
  /**
   * A wedged replica (SIGSTOPped): with `headers` false it never answers /v1/generate at all; else it admits
   * the request, streams `after` tokens (default 0), then says nothing more (a /v1/cancel changes nothing) until
   * the fetch is aborted, which errors the body as a real aborted fetch does.
   */
  | { kind: "hang"; after?: number; headers?: boolean };

/** A gate and the function that opens it. */
export function gate(after: number): Gate & { release: () => void } {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  return { after, open, release };
}

export interface Seen {
  host: string;
  path: string;
  auth: string | null;
  /** The x-moe-wire-version the edge sent. */
  wire: string | null;
  body: GenerateRequest | EmbedRequest | CancelRequest;
}

export const byteIds = (text: string) => [...new TextEncoder().encode(text)].map((b) => b + 3);

/**
 * Like the real backend (gpu-backend/server/app.ts): never streams or counts its stop token (EOS);
 * /v1/cancel makes the open stream end with done/"cancelled" whose usage counts every id it streamed;
 * an aborted fetch just ends the stream.
 */
export class FakeBackend {
  readonly seen: Seen[] = [];
  /** Per request_id: how each generation ended and how many tokens it generated (the backend's truth). */
  readonly finished = new Map<string, { finish: FinishReason | "aborted"; completion: number }>();
  private readonly inFlight = new Map<string, () => void>();
  private behaviours = new Map<string, Behaviour>();
  defaultText = "Hello from the fake backend.";

  set(host: string, b: Behaviour): this {
    this.behaviours.set(host, b);
    return this;
  }

  private cancelWaiters: Array<(id: string) => void> = [];
  private hangWaiters: Array<(id: string) => void> = [];

  /** Resolves with the request_id of the next generation that goes silent on a "hang" replica. */
  nextHang(): Promise<string> {
    return new Promise((resolve) => this.hangWaiters.push(resolve));
  }

  /** Resolves with the request_id of the next POST /v1/cancel (an event to wait on). */
  nextCancel(): Promise<string> {
    return new Promise((resolve) => this.cancelWaiters.push(resolve));
  }

  /** request_ids sent to POST /v1/cancel, in order. */
  get cancels(): string[] {
    return this.seen.filter((s) => s.path === "/v1/cancel").map((s) => (s.body as CancelRequest).request_id);
  }

  install(): void {
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      const url = new URL(req.url);
      const b = this.behaviours.get(url.host) ?? { kind: "ok" };
      if (b.kind === "down") throw new TypeError("fetch failed: connection refused");
      const body = (await req.json()) as GenerateRequest;
      this.seen.push({
        host: url.host,
        path: url.pathname,
        auth: req.headers.get("authorization"),
        wire: req.headers.get("x-moe-wire-version"),
        body,
      });
      if (b.kind === "status")
        return Response.json(
          { error: { message: "nope", type: "invalid_request_error", param: null, code: b.code ?? "x" } },
          { status: b.status },
        );
      if (url.pathname === "/v1/embed" && b.kind === "embed-held")
        return this.embedHeld(body as unknown as EmbedRequest, b.computed, req.signal);
      if (url.pathname === "/v1/embed") return this.embed(body as unknown as EmbedRequest);
      if (url.pathname === "/v1/cancel") {
        const id = (body as unknown as CancelRequest).request_id;
        const cancel = this.inFlight.get(id);
        cancel?.();
        for (const w of this.cancelWaiters.splice(0)) w(id);
        return Response.json({ cancelled: cancel !== undefined });
      }
      if (b.kind === "hang") return this.hang(b, body, req.signal);
      return this.generate(b, body, req.signal);
    });
  }

  private embedHeld(body: EmbedRequest, computed: number, signal: AbortSignal): Promise<Response> {
    const id = body.request_id ?? "";
    return new Promise((resolve) => {
      signal.addEventListener("abort", () => {
        this.finished.set(id, { finish: "aborted", completion: 0 });
        resolve(new Response(null, { status: 499 }));
      });
      this.inFlight.set(id, () => {
        this.inFlight.delete(id);
        this.finished.set(id, { finish: "cancelled", completion: computed });
        resolve(
          Response.json(
            {
              error: { message: "cancelled", type: "invalid_request_error", param: null, code: "cancelled" },
              usage: { prompt_tokens: computed },
            },
            { status: 409 },
          ),
        );
      });
    });
  }

  private hang(b: { after?: number; headers?: boolean }, req: GenerateRequest, signal: AbortSignal): Promise<Response> {
    const id = req.request_id;
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const abortError = () => new DOMException("The operation was aborted.", "AbortError");
    const silent = () => {
      for (const w of this.hangWaiters.splice(0)) w(id);
    };
    if (b.headers === false) {
      silent();
      return aborted.then(() => {
        this.finished.set(id, { finish: "aborted", completion: 0 });
        throw abortError();
      });
    }
    const ids = byteIds(this.defaultText).slice(0, Math.min(b.after ?? 0, req.max_tokens));
    let sent = false;
    const enc = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (!sent && ids.length) {
          sent = true;
          controller.enqueue(enc.encode(JSON.stringify({ type: "tokens", ids } satisfies GenerateEvent) + "\n"));
          return;
        }
        silent();
        await aborted;
        this.finished.set(id, { finish: "aborted", completion: ids.length });
        controller.error(abortError());
      },
    });
    return Promise.resolve(new Response(stream, { headers: { "content-type": "application/x-ndjson" } }));
  }

  private embed(body: EmbedRequest): Response {
    const data = body.inputs.map((ids) => [ids.length / 10, 0.5, -0.25, 1 / 3]);
    return Response.json({
      model: body.model,
      data,
      usage: { prompt_tokens: body.inputs.reduce((n, i) => n + i.length, 0) },
    });
  }

  private generate(b: Behaviour, req: GenerateRequest, signal: AbortSignal): Response {
    const done = (finish: FinishReason, completion: number, cached = 0, error?: string): GenerateEvent => ({
      type: "done",
      finish_reason: finish,
      usage: { prompt_tokens: req.input_ids.length, cached_tokens: cached, completion_tokens: completion },
      timings: { queue_ms: 0, prefill_ms: 1, decode_ms: 1 },
      ...(error ? { error } : {}),
    });
    const text = b.kind === "ok" || b.kind === "break-after" ? (b.text ?? this.defaultText) : "";
    const all = byteIds(text);
    const ids = all.slice(0, req.max_tokens);
    const natural: FinishReason = all.length > req.max_tokens ? "length" : "stop";
    const chunk = b.kind === "ok" ? (b.chunk ?? 3) : 2;
    const delayMs = b.kind === "ok" ? (b.delayMs ?? 0) : 0;
    const lag = b.kind === "ok" ? (b.lag ?? 0) : 0;
    const cached = b.kind === "ok" ? (b.cached ?? 0) : 0;
    const held = b.kind === "ok" || b.kind === "break-after" ? b.gate : undefined;
    let sent = 0;
    let stopAt = Infinity;
    const id = req.request_id;
    this.inFlight.set(id, () => (stopAt = Math.min(stopAt, sent + lag)));
    const end = (finish: FinishReason | "aborted") => {
      this.inFlight.delete(id);
      this.finished.set(id, { finish, completion: sent });
    };
    const enc = new TextEncoder();
    const line = (ev: GenerateEvent) => enc.encode(JSON.stringify(ev) + "\n");
    // Pull-based: tokens are "generated" as they are read (at most one event buffered ahead).
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (signal.aborted) {
          end("aborted");
          return controller.close();
        }
        if (b.kind === "error-first") {
          end("error");
          controller.enqueue(line(done("error", 0, 0, "out of memory")));
          return controller.close();
        }
        if (held && sent >= held.after) await held.open;
        if (sent < ids.length && sent < stopAt) {
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          const n = Math.min(chunk, ids.length - sent, stopAt - sent);
          controller.enqueue(line({ type: "tokens", ids: ids.slice(sent, sent + n) }));
          sent += n;
          return;
        }
        if (b.kind === "break-after") {
          end("error");
          return controller.error(new Error("connection reset"));
        }
        const finish = sent < ids.length ? "cancelled" : natural;
        end(finish);
        controller.enqueue(line(done(finish, sent, cached)));
        controller.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
  }
}
