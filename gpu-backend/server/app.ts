/**
 * The backend's HTTP surface (Hono): NDJSON generation streams, cancel, embeddings, model list, health, metrics.
 * Implements the backend side of contract/wire.ts. Errors are the OpenAI shape
 * {error:{message, type, param, code}} (BackendErrorBody, server/http.ts). Bodies over --max-body-mb get 413 unread;
 * the others are parsed and checked once, by Hono's validator with the contract's zod schemas (server/http.ts).
 *
 * Every finished generate request prints one JSON line on stdout (the operators' audit trail, which the
 * edge's ledger must match): {"event":"generate","request_id","model","prompt_tokens","cached_tokens",
 * "completion_tokens","finish_reason","queue_ms","prefill_ms","decode_ms"}. Never token ids or text.
 *
 * Every generate and embed request the engine accepted also yields one usage record (gpu-backend/usage/),
 * durable in the journal before the stream's `done` line (or the embed's response) is written.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import {
  CancelRequestSchema,
  EmbedRequestSchema,
  GenerateRequestSchema,
  NDJSON_CONTENT_TYPE,
  WIRE_VERSION,
  WIRE_VERSION_HEADER,
  WIRE_VERSION_UNSUPPORTED,
  type CancelResponse,
  type EmbedResponse,
  type EmbedStoppedBody,
  type GenerateEvent,
  type ModelsResponse,
} from "../../contract/wire";
import { AdmissionError, EmbedStopped, type Engine } from "../engine/engine";
import { UsageStatusRequestSchema, type RequestState, type UsageStatusResponse } from "../../contract/usage";
import type { UsageInput, UsageSink } from "../usage/witness";
import { BACKEND_PATHS } from "../../contract/routes";
import { bearer, err, httpExceptionResponse, InFlight, jsonBody } from "./http";
import { ndjsonLine, renderOutput } from "./render";
import { BackendMetrics } from "./metrics";

export interface ServerState {
  engines: Map<string, Engine>;
  token: string | undefined;
  /** Bearer token for GET /metrics (METRICS_TOKEN); undefined = open, like vLLM's. Never the backend token. */
  metricsToken: string | undefined;
  /** Larger request bodies get 413 before they are read. */
  maxBodyBytes: number;
  /** true once every model is loaded and warmed. */
  ready: boolean;
  /** true after SIGTERM: new work gets 503. */
  draining: boolean;
  /** The usage witness; set by main before `ready`. */
  usage: UsageSink | null;
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

export function createApp(state: ServerState): Hono {
  const app = new Hono();
  const inFlight = new InFlight();
  const metrics = new BackendMetrics({
    engines: () => state.engines.values(),
    inFlight: () => inFlight.size,
    usage: () => state.usage?.stats(),
  });

  app.use("*", async (c, next) => {
    await next();
    metrics.http(c.req.routePath, c.res.status);
  });

  app.get(BACKEND_PATHS.health, (c) =>
    state.ready && !state.draining
      ? c.json({ status: "ok", models: [...state.engines.keys()] })
      : c.json({ status: state.draining ? "draining" : "loading" }, 503),
  );

  app.use(
    "/v1/*",
    bearer(() => state.token, "backend"),
  );
  // The contract version the caller speaks (contract/wire.ts); absent means this one.
  app.use("/v1/*", async (c, next) => {
    const v = c.req.header(WIRE_VERSION_HEADER);
    if (v !== undefined && v.trim() !== String(WIRE_VERSION)) {
      return err(
        c,
        400,
        WIRE_VERSION_UNSUPPORTED,
        `wire version '${v.slice(0, 16)}' is not spoken here (this backend speaks ${WIRE_VERSION})`,
      );
    }
    await next();
  });
  // Its own token: a Prometheus scraper never holds the token that can run and cancel work.
  app.use(
    BACKEND_PATHS.metrics,
    bearer(() => state.metricsToken, "metrics"),
  );
  // After auth (strangers learn nothing), before any handler reads the body.
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: state.maxBodyBytes,
      // connection: close, because the unread rest of the body is still on the socket: it cannot be reused.
      onError: (c) =>
        err(c, 413, "payload_too_large", `request body exceeds ${state.maxBodyBytes} bytes`, {
          headers: { connection: "close" },
        }),
    }),
  );

  app.get(BACKEND_PATHS.metrics, async (c) =>
    c.text(await metrics.render(), 200, { "content-type": metrics.contentType }),
  );

  app.get(BACKEND_PATHS.models, (c) =>
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
    err(
      c,
      503,
      state.draining ? "shutting_down" : "loading",
      state.draining ? "server is shutting down" : "models are loading",
      {
        headers: { "retry-after": "1" },
      },
    );
  // Before the body is read: new work is refused while the models load or the server drains.
  const whenServing = createMiddleware(async (c, next) => (state.ready && !state.draining ? next() : unavailable(c)));
  const withUsage = createMiddleware(async (c, next) => (state.usage ? next() : unavailable(c)));
  /** Journals the final record, then runs `then` (which acknowledges the end to the caller). */
  const witness = (rec: UsageInput, then: () => void) => {
    const p = state.usage ? state.usage.record(rec) : Promise.reject(new Error("no usage journal"));
    p.then(then, (e: unknown) => {
      // The caller still gets its answer: the worker's own settle remains the first witness.
      console.error(`backend: usage journal write failed for ${rec.request_id}: ${(e as Error).message}`);
      then();
    });
  };
  const notServed = (c: Context, model: string) =>
    err(c, 404, "model_not_found", `model '${model}' is not served here`, { param: "model" });

  app.post(BACKEND_PATHS.generate, whenServing, jsonBody(GenerateRequestSchema), async (c) => {
    const params = c.req.valid("json");
    if ((params.top_logprobs ?? 0) > 0 && !params.logprobs) {
      return err(c, 400, "invalid_request", "top_logprobs needs logprobs: true", { param: "top_logprobs" });
    }
    const engine = state.engines.get(params.model);
    if (!engine) return notServed(c, params.model);

    const enc = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    let cancel: (() => void) | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        controller = ctl;
      },
      cancel: () => {
        closed = true;
        cancel?.();
      },
    });
    // Built before any work is queued: if the response cannot be built, no generation runs orphaned.
    const res = new Response(stream, {
      headers: { "content-type": NDJSON_CONTENT_TYPE, "cache-control": "no-store", "x-request-id": params.request_id },
    });
    let unregister: (() => void) | undefined;
    let finished = false;
    const startedAt = Date.now();
    const observe = metrics.generation(engine);
    const write = (ev: GenerateEvent) => {
      if (closed) return;
      controller.enqueue(enc.encode(ndjsonLine(ev)));
      if (ev.type === "done") {
        closed = true;
        controller.close();
      }
    };
    const emit = (ev: GenerateEvent) => {
      observe(ev);
      if (ev.type !== "done") return write(ev);
      finished = true;
      unregister?.();
      logGenerate(params.request_id, params.model, ev);
      const record: UsageInput = {
        request_id: params.request_id,
        kind: "generate",
        key_id: params.key_id ?? null,
        tier: params.tier ?? null,
        model: params.model,
        ...ev.usage,
        finish_reason: ev.finish_reason,
        started_at: startedAt,
        ended_at: Date.now(),
      };
      witness(record, () => write(ev));
    };
    try {
      cancel = engine.submit(params, (out) => {
        for (const ev of renderOutput(out)) emit(ev);
      });
    } catch (e) {
      if (e instanceof AdmissionError) {
        return err(
          c,
          e.status,
          e.code,
          e.message,
          e.status === 400 ? { param: e.param ?? "input_ids" } : { headers: { "retry-after": "1" } },
        );
      }
      throw e;
    }
    try {
      if (!finished) unregister = inFlight.add(params.request_id, cancel);
      c.req.raw.signal.addEventListener("abort", () => cancel?.(), { once: true });
    } catch (e) {
      cancel();
      throw e;
    }
    return res;
  });

  // Not gated on ready/draining: stopping work is always allowed.
  app.post(BACKEND_PATHS.cancel, jsonBody(CancelRequestSchema), async (c) => {
    return c.json<CancelResponse>({ cancelled: inFlight.cancel(c.req.valid("json").request_id) });
  });

  // What this backend knows of some request ids (contract/usage.ts): lets the worker end a reservation
  // whose settle never came. Running wins over finished: a duplicate id may still be in flight.
  app.post(BACKEND_PATHS.usageStatus, withUsage, jsonBody(UsageStatusRequestSchema), async (c) => {
    const recent = state.usage!.recent;
    const requests: Record<string, RequestState> = {};
    for (const id of c.req.valid("json").request_ids) {
      const record = recent.get(id);
      requests[id] = inFlight.has(id)
        ? { state: "running" }
        : record
          ? { state: "finished", record }
          : { state: "unknown" };
    }
    return c.json<UsageStatusResponse>({ since: recent.since, requests });
  });

  app.post(BACKEND_PATHS.embed, whenServing, jsonBody(EmbedRequestSchema), async (c) => {
    const p = c.req.valid("json");
    const engine = state.engines.get(p.model);
    if (!engine) return notServed(c, p.model);
    const startedAt = Date.now();
    const record = (finish_reason: "stop" | "cancelled" | "error", prompt_tokens: number): Promise<void> =>
      new Promise((resolve) =>
        witness(
          {
            request_id: p.request_id ?? `embed_${startedAt}`,
            kind: "embed",
            key_id: p.key_id ?? null,
            tier: p.tier ?? null,
            model: engine.name,
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: 0,
            finish_reason,
            started_at: startedAt,
            ended_at: Date.now(),
          },
          resolve,
        ),
      );
    // Stopped by a client disconnect or POST /v1/cancel, between inputs (engine.embed).
    const ac = new AbortController();
    const abort = () => ac.abort();
    c.req.raw.signal.addEventListener("abort", abort, { once: true });
    const unregister = p.request_id ? inFlight.add(p.request_id, abort) : () => {};
    let data: number[][];
    try {
      data = await engine.embed(p.inputs, { signal: ac.signal });
    } catch (e) {
      if (e instanceof AdmissionError) return err(c, e.status, e.code, e.message, { param: "inputs" });
      if (!(e instanceof EmbedStopped)) throw e;
      await record(e.reason, e.computedTokens);
      const status = e.reason === "cancelled" ? 409 : 500;
      const code = e.reason === "cancelled" ? "cancelled" : "internal_error";
      return c.json<EmbedStoppedBody>(
        {
          error: {
            message: `${e.message} after ${e.computedTokens} tokens`,
            type: status === 409 ? "invalid_request_error" : "api_error",
            param: null,
            code,
          },
          usage: { prompt_tokens: e.computedTokens },
        },
        status,
      );
    } finally {
      unregister();
      c.req.raw.signal.removeEventListener("abort", abort);
    }
    const tokens = p.inputs.reduce((a, x) => a + x.length, 0);
    await record("stop", tokens);
    return c.json<EmbedResponse>({ model: engine.name, data, usage: { prompt_tokens: tokens } });
  });

  app.notFound((c) => err(c, 404, "not_found", "no such route"));
  app.onError((e, c) => {
    const answered = httpExceptionResponse(e, c);
    if (answered) return answered;
    console.error(`backend: ${c.req.method} ${c.req.path}: ${e.message}`);
    return err(c, 500, "internal_error", "internal error");
  });
  return app;
}
