/**
 * A test double of the GPU backend (contract/wire.ts), installed as the worker's outbound fetch.
 * Unit tests only: the real backend is exercised by test/node/e2e-worker.test.ts.
 *
 * Each replica host has a behaviour; generated text is emitted as SentencePiece byte tokens
 * (id = 3 + byte), so any ASCII/UTF-8 script round-trips through the edge detokenizer exactly.
 */
import { vi } from "vitest";
import type { EmbedRequest, GenerateEvent, GenerateRequest } from "../../contract/wire";

export type Behaviour =
  | { kind: "ok"; text?: string; eos?: boolean; chunk?: number; cached?: number; delayMs?: number }
  | { kind: "down" }
  | { kind: "status"; status: number }
  | { kind: "error-first" }
  | { kind: "break-after"; text: string };

export interface Seen {
  host: string;
  path: string;
  auth: string | null;
  body: GenerateRequest | EmbedRequest;
}

export const byteIds = (text: string) => [...new TextEncoder().encode(text)].map((b) => b + 3);

export class FakeBackend {
  readonly seen: Seen[] = [];
  private behaviours = new Map<string, Behaviour>();
  defaultText = "Hello from the fake backend.";

  set(host: string, b: Behaviour): this {
    this.behaviours.set(host, b);
    return this;
  }

  install(): void {
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      const url = new URL(req.url);
      const b = this.behaviours.get(url.host) ?? { kind: "ok" };
      if (b.kind === "down") throw new TypeError("fetch failed: connection refused");
      const body = (await req.json()) as GenerateRequest;
      this.seen.push({ host: url.host, path: url.pathname, auth: req.headers.get("authorization"), body });
      if (b.kind === "status") return Response.json({ error: { message: "nope", code: "x" } }, { status: b.status });
      if (url.pathname === "/v1/embed") return this.embed(body as unknown as EmbedRequest);
      return this.generate(b, body, req.signal);
    });
  }

  private embed(body: EmbedRequest): Response {
    const data = body.inputs.map((ids) => [ids.length / 10, 0.5, -0.25, 1 / 3]);
    return Response.json({ model: body.model, data, usage: { prompt_tokens: body.inputs.reduce((n, i) => n + i.length, 0) } });
  }

  private generate(b: Behaviour, req: GenerateRequest, signal: AbortSignal): Response {
    const events: GenerateEvent[] = [];
    const done = (finish: "stop" | "length" | "error", completion: number, cached = 0, error?: string): GenerateEvent => ({
      type: "done",
      finish_reason: finish,
      usage: { prompt_tokens: req.input_ids.length, cached_tokens: cached, completion_tokens: completion },
      timings: { queue_ms: 0, prefill_ms: 1, decode_ms: 1 },
      ...(error ? { error } : {}),
    });
    if (b.kind === "error-first") events.push(done("error", 0, 0, "out of memory"));
    let breakAfter = false;
    if (b.kind === "ok" || b.kind === "break-after") {
      const text = b.text ?? this.defaultText;
      let ids = byteIds(text);
      const eos = b.kind === "ok" && b.eos !== false;
      if (eos) ids.push(2);
      const finish = ids.length > req.max_tokens ? "length" : "stop";
      ids = ids.slice(0, req.max_tokens);
      const chunk = b.kind === "ok" ? (b.chunk ?? 3) : 2;
      for (let i = 0; i < ids.length; i += chunk) events.push({ type: "tokens", ids: ids.slice(i, i + chunk) });
      if (b.kind === "break-after") breakAfter = true;
      else events.push(done(finish, ids.length, b.cached ?? 0));
    }
    const delayMs = b.kind === "ok" ? (b.delayMs ?? 0) : 0;
    const enc = new TextEncoder();
    // Pull-based: one event per read, so a "break" errors the stream only after the events were read.
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (signal.aborted) return controller.close();
        if (i < events.length) {
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          controller.enqueue(enc.encode(JSON.stringify(events[i++]) + "\n"));
        } else if (breakAfter) controller.error(new Error("connection reset"));
        else controller.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
  }
}
