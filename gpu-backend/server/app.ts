/**
 * The backend's HTTP surface (Hono): NDJSON generation streams, cancel, embeddings, model list, health, metrics.
 * Implements the backend side of contract/wire.ts. Errors are {error:{message, code}} (BackendErrorBody).
 *
 * Every finished generate request prints one JSON line on stdout (the operators' audit trail, which the
 * edge's ledger must match): {"event":"generate","request_id","model","prompt_tokens","cached_tokens",
 * "completion_tokens","finish_reason","queue_ms","prefill_ms","decode_ms"}. Never token ids or text.
 */
import { timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  CancelRequestSchema,
  EmbedRequestSchema,
  GenerateRequestSchema,
  NDJSON_CONTENT_TYPE,
  type BackendErrorBody,
  type CancelResponse,
  type EmbedResponse,
  type GenerateEvent,
  type ModelsResponse,
} from "../../contract/wire";
import { AdmissionError, type Engine } from "../engine/engine";
import { renderMetrics, type HttpCounters } from "./metrics";

export interface ServerState {
  engines: Map<string, Engine>;
  token: string | undefined;
  /** true once every model is loaded and warmed. */
  ready: boolean;
  /** true after SIGTERM: new work gets 503. */
  draining: boolean;
}

const err = (c: Context, status: ContentfulStatusCode, code: string, message: string, headers: Record<string, string> = {}) => {
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return c.json<BackendErrorBody>({ error: { message, code } }, status);
};

function tokenOk(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? "");
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  // Compare equal-length buffers so the comparison time does not leak the token's length or prefix.
  return a.length === b.length ? timingSafeEqual(a, b) : (timingSafeEqual(b, b), false);
}

async function readJson(c: Context): Promise<{ ok: true; body: unknown } | { ok: false }> {
  try {
    return { ok: true, body: await c.req.json() };
  } catch {
    return { ok: false };
  }
}

function zodMessage(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues
    .slice(0, 3)
    .map((i) => `${i.path.map(String).join(".") || "body"}: ${i.message}`)
    .join("; ");
}

/** The audit line for one finished generation (see the module doc). */
function logGenerate(requestId: string, model: string, ev: Extract<GenerateEvent, { type: "done" }>): void {
  console.log(
    JSON.stringify({
      event: "generate",
      request_id: requestId,
      model,
      prompt_tokens: ev.usage.prompt_tokens,
      cached_tokens: ev.usage.cached_tokens,
      completion_tokens: ev.usage.completion_tokens,
      finish_reason: ev.finish_reason,
      ...ev.timings,
    }),
  );
}

/**
 * In-flight generations by request_id, for POST /v1/cancel. A set per id: ids come from the edge and are
 * unique there, but the backend does not rely on it (a duplicate must not unhook the other request).
 */
class InFlight {
  private readonly byId = new Map<string, Set<() => void>>();
  add(id: string, cancel: () => void): () => void {
    let set = this.byId.get(id);
    if (!set) this.byId.set(id, (set = new Set()));
    set.add(cancel);
    return () => {
      set.delete(cancel);
      if (set.size === 0 && this.byId.get(id) === set) this.byId.delete(id);
    };
  }
  cancel(id: string): boolean {
    const set = this.byId.get(id);
    if (!set) return false;
    for (const c of set) c();
    return true;
  }
}

export function createApp(state: ServerState): Hono {
  const app = new Hono();
  const http: HttpCounters = { requests: new Map() };
  const inFlight = new InFlight();

  app.use("*", async (c, next) => {
    await next();
    const key = `${c.req.routePath} ${c.res.status}`;
    http.requests.set(key, (http.requests.get(key) ?? 0) + 1);
  });

  app.get("/health", (c) =>
    state.ready && !state.draining
      ? c.json({ status: "ok", models: [...state.engines.keys()] })
      : c.json({ status: state.draining ? "draining" : "loading" }, 503),
  );

  app.use("/v1/*", async (c, next) => {
    if (state.token !== undefined && !tokenOk(c.req.header("authorization"), state.token)) {
      return err(c, 401, "unauthorized", "missing or invalid backend token");
    }
    await next();
  });
  app.use("/metrics", async (c, next) => {
    if (state.token !== undefined && !tokenOk(c.req.header("authorization"), state.token)) {
      return err(c, 401, "unauthorized", "missing or invalid backend token");
    }
    await next();
  });

  app.get("/metrics", (c) =>
    c.text(renderMetrics([...state.engines.values()], http), 200, { "content-type": "text/plain; version=0.0.4" }),
  );

  app.get("/v1/models", (c) =>
    c.json<ModelsResponse>({
      object: "list",
      data: [...state.engines.values()].map((e) => ({
        id: e.name,
        context_length: e.contextLength,
        vocab_size: e.runner.manifest.vocab_size,
        hidden_size: e.runner.manifest.hidden_size,
        architecture: e.runner.manifest.architecture,
      })),
    }),
  );

  const unavailable = (c: Context) =>
    err(c, 503, state.draining ? "shutting_down" : "loading", state.draining ? "server is shutting down" : "models are loading", {
      "retry-after": "1",
    });

  app.post("/v1/generate", async (c) => {
    if (!state.ready || state.draining) return unavailable(c);
    const json = await readJson(c);
    if (!json.ok) return err(c, 400, "invalid_json", "request body is not valid JSON");
    const parsed = GenerateRequestSchema.safeParse(json.body);
    if (!parsed.success) return err(c, 400, "invalid_request", zodMessage(parsed.error.issues));
    const params = parsed.data;
    const engine = state.engines.get(params.model);
    if (!engine) return err(c, 404, "model_not_found", `model '${params.model}' is not served here`);

    const enc = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    const stream = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        controller = ctl;
      },
      cancel: () => {
        closed = true;
        cancel?.();
      },
    });
    let unregister: (() => void) | undefined;
    let finished = false;
    const emit = (ev: GenerateEvent) => {
      if (ev.type === "done") {
        finished = true;
        unregister?.();
        logGenerate(params.request_id, params.model, ev);
      }
      if (closed) return;
      controller.enqueue(enc.encode(JSON.stringify(ev) + "\n"));
      if (ev.type === "done") {
        closed = true;
        controller.close();
      }
    };
    let cancel: (() => void) | undefined;
    try {
      cancel = engine.submit(params, emit);
    } catch (e) {
      if (e instanceof AdmissionError) {
        return err(c, e.status, e.code, e.message, e.status === 400 ? {} : { "retry-after": "1" });
      }
      throw e;
    }
    if (!finished) unregister = inFlight.add(params.request_id, cancel);
    c.req.raw.signal.addEventListener("abort", () => cancel?.(), { once: true });
    return new Response(stream, {
      headers: { "content-type": NDJSON_CONTENT_TYPE, "cache-control": "no-store", "x-request-id": params.request_id },
    });
  });

  // Not gated on ready/draining: stopping work is always allowed.
  app.post("/v1/cancel", async (c) => {
    const json = await readJson(c);
    if (!json.ok) return err(c, 400, "invalid_json", "request body is not valid JSON");
    const parsed = CancelRequestSchema.safeParse(json.body);
    if (!parsed.success) return err(c, 400, "invalid_request", zodMessage(parsed.error.issues));
    return c.json<CancelResponse>({ cancelled: inFlight.cancel(parsed.data.request_id) });
  });

  app.post("/v1/embed", async (c) => {
    if (!state.ready || state.draining) return unavailable(c);
    const json = await readJson(c);
    if (!json.ok) return err(c, 400, "invalid_json", "request body is not valid JSON");
    const parsed = EmbedRequestSchema.safeParse(json.body);
    if (!parsed.success) return err(c, 400, "invalid_request", zodMessage(parsed.error.issues));
    const engine = state.engines.get(parsed.data.model);
    if (!engine) return err(c, 404, "model_not_found", `model '${parsed.data.model}' is not served here`);
    try {
      const data = await engine.embed(parsed.data.inputs);
      const tokens = parsed.data.inputs.reduce((a, x) => a + x.length, 0);
      return c.json<EmbedResponse>({ model: engine.name, data, usage: { prompt_tokens: tokens } });
    } catch (e) {
      if (e instanceof AdmissionError) return err(c, e.status, e.code, e.message);
      throw e;
    }
  });

  app.notFound((c) => err(c, 404, "not_found", "no such route"));
  app.onError((e, c) => {
    console.error(`backend: ${c.req.method} ${c.req.path}: ${e.message}`);
    return err(c, 500, "internal_error", "internal error");
  });
  return app;
}
