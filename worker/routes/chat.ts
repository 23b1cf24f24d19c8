/**
 * POST /v1/chat/completions: validate -> tokenize (chat template) -> context check -> response cache
 * -> admit (prompt + first budget slice) -> backend (prefix-aware replica, retries before the first
 * token) -> relay, reserving budget slices as tokens flow -> settle once (inference/lifecycle.ts).
 *
 * Decisions (see README "API"):
 *  - temperature defaults to 0.7 (Mistral); max_tokens defaults to, and is clamped to, the context left.
 *  - finish_reason: "stop" | "length" (the backend's "model_length", or the budget refusing the next
 *    slice, which also sets `budget_exhausted: true`) | "error".
 *  - A client that leaves is a cancellation in every mode: the replica is cancelled (POST /v1/cancel),
 *    drained to its final `done`, and exactly what it generated is billed with status `cancelled`.
 *  - Streaming: a failure after the first token ends with a chunk with finish_reason "error" and the
 *    usage delivered so far, then `data: {"error": {...}}` and no [DONE].
 *  - Non-streaming: an answer ready within COMMIT_AFTER_MS is sent whole, with its real status (a 502 if
 *    the backend failed, nothing charged). A longer one commits a 200 and JSON headers then, and writes
 *    a space every HEARTBEAT_MS until the JSON follows (leading whitespace is valid JSON). This keeps
 *    clients' header timeouts (Node fetch: 300 s) from firing and retrying a paid request, and lets the
 *    runtime see a client that left even where request.signal does not fire for a request without a
 *    response (wrangler dev). A backend failure after that commit is a 200 whose choice carries the
 *    text so far and finish_reason "error", billed like the streamed case.
 */
import type { Context } from "hono";
import { factory, type AppEnv } from "../factory";
import type { GenerateRequest } from "../../contract/wire";
import { assertTierAllowed } from "../billing/meter";
import type { UsageStatus } from "../billing/types";
import { ApiError, badRequest } from "../errors";
import { EOS_ID, applyChatTemplate, createStopMatcher } from "../tokenizer";
import * as out from "../inference/chat-response";
import { readJson } from "../api/body";
import { contextExceeded, parseChatBody, type ChatParams } from "../inference/chat-request";
import { ClientGone, type AttemptLog } from "../inference/dispatch";
import { cancelGenerate } from "../inference/backend";
import { pumpGeneration, startGeneration, type PumpResult } from "../inference/generation";
import { Lifecycle } from "../inference/lifecycle";
import * as responseCache from "../inference/response-cache";
import { replicaRouter, routingKey } from "../inference/router";
import { BodyChannel, SSE_DONE, SSE_HEADERS, STREAMED_JSON_HEADERS, SseChannel, sseFrame } from "../inference/sse";
import { getTiers, modelNotFound, type Tier } from "../inference/tiers";

export const chatRoutes = factory.createApp();

/** A status for requests whose client left before any response (nginx's convention). */
const CLIENT_CLOSED = 499;
/** Non-streaming: how long an answer may take before its 200 and headers are committed. */
export const COMMIT_AFTER_MS = 500;
/** Non-streaming, once committed: at most one keep-alive space per this interval, written as tokens arrive. */
export const HEARTBEAT_MS = 500;

const backendError = () =>
  new ApiError(502, "The model failed while generating. Please retry.", "api_error", "backend_error");

function chatTier(c: Context<AppEnv>, model: string): Tier {
  const tier = getTiers(c.env.TIERS).get(model);
  if (!tier) throw modelNotFound(model);
  assertTierAllowed(c.get("account"), model);
  if (tier.kind !== "chat") throw badRequest(`The model '${model}' does not support chat completions.`, "model", "invalid_model");
  return tier;
}

chatRoutes.post("/chat/completions", async (c) => {
  const life = new Lifecycle(c, "chat");
  try {
    return await handle(c, life);
  } catch (err) {
    throw life.fail(err);
  }
});

const statusOf = (r: PumpResult): UsageStatus => (r.finishReason === "cancelled" ? "cancelled" : r.finishReason === "error" ? "error" : "ok");
const endingOf = (r: PumpResult): out.Ending => ({ finishReason: r.finishReason === "cancelled" ? "stop" : r.finishReason, budgetExhausted: r.budgetExhausted });

async function handle(c: Context<AppEnv>, life: Lifecycle): Promise<Response> {
  const p = parseChatBody(await readJson(c.req.raw));
  life.setModel(p.model);
  life.log.stream = p.stream;
  const tier = chatTier(c, p.model);
  const ttl = responseCache.requestedTtl(c.req.header(responseCache.CACHE_TTL_HEADER));

  const promptIds = applyChatTemplate(p.messages);
  const promptTokens = promptIds.length;
  if (promptTokens >= tier.contextWindow) throw contextExceeded(tier.contextWindow, promptTokens);
  const room = tier.contextWindow - promptTokens;
  const maxTokens = Math.min(p.maxTokens ?? room, room);
  if (c.env.LOG_PROMPTS === "1") life.log.prompt = p.messages;

  const meta: out.Meta = { id: out.completionId(), created: Math.floor(Date.now() / 1000), model: p.model };

  let cacheKey: Request | null = null;
  if (ttl !== null) {
    if (!responseCache.isDeterministic(p.temperature, p.seed)) life.log.cache = "BYPASS";
    else {
      cacheKey = await responseCache.cacheKey({
        keyId: life.account.keyId, model: p.model, promptIds, temperature: p.temperature, topP: p.topP, seed: p.seed, stop: p.stop, maxTokens,
      });
      const hit = await responseCache.lookup(cacheKey);
      life.log.cache = hit ? "HIT" : "MISS";
      if (hit) return serveHit(c, life, tier, p, meta, promptTokens, hit);
    }
  }

  const admitted = await life.admit(tier.pricing, promptTokens, maxTokens);
  const headers: Record<string, string> = { ...admitted.headers };
  if (life.log.cache) headers["x-cache"] = life.log.cache;

  // Two signals (generation.ts): the client's, and the backend fetch's. The fetch is never aborted just
  // because the client left: the replica is cancelled and its stream drained, so its final usage is billed.
  const backend = new AbortController();
  const genReq: GenerateRequest = {
    model: tier.backendModel,
    input_ids: promptIds,
    max_tokens: maxTokens,
    temperature: p.temperature,
    top_p: p.topP,
    seed: p.seed,
    stop_token_ids: [EOS_ID],
    cache_salt: life.account.cacheSalt,
    request_id: life.requestId,
  };
  const order = replicaRouter.rank(tier.backends, routingKey(promptIds, life.account.cacheSalt));
  const failures: AttemptLog[] = [];

  let started;
  try {
    const starting = startGeneration(replicaRouter, order, c.env.BACKEND_TOKEN, genReq, { client: life.client.signal, backend: backend.signal }, failures);
    // Keeps the request's I/O alive through a disconnect, so what follows (settle) still runs.
    c.executionCtx.waitUntil(starting.catch(() => {}));
    started = await starting;
  } catch (err) {
    life.log.failures = failures;
    if (err instanceof ClientGone) {
      life.settleEmpty("cancelled");
      life.finish(CLIENT_CLOSED, { finish_reason: "cancelled" });
      return new Response(null, { status: CLIENT_CLOSED });
    }
    life.settleEmpty("error");
    throw err;
  }
  replicaRouter.recordSuccess(started.replica);
  Object.assign(life.log, { replica: started.replica, attempts: started.attempts, failures: failures.length ? failures : undefined });

  const budget = life.slices(maxTokens);
  let text = "";
  /** Runs the generation to its end (drain included) and releases the replica; never rejects. */
  const run = async (onText: (t: string) => boolean, onEvent?: () => void): Promise<PumpResult> => {
    let r: PumpResult;
    try {
      r = await pumpGeneration(started.value, {
        matcher: createStopMatcher(p.stop),
        onText: (t) => {
          text += t;
          return onText(t);
        },
        clientSignal: life.client.signal,
        cancelBackend: () => cancelGenerate(started.replica, c.env.BACKEND_TOKEN, life.requestId),
        abortBackend: () => backend.abort(),
        startedAt: life.startedAt,
        budget,
        onEvent,
      });
    } catch (err) {
      // pumpGeneration handles backend and client failures itself; this is a bug guard.
      r = { finishReason: "error", completionTokens: 0, cachedTokens: 0, ttftMs: null, backendFailed: false, error: String(err) };
      backend.abort();
    }
    started.release();
    if (r.backendFailed) replicaRouter.recordFailure(started.replica);
    Object.assign(life.log, { budget_top_ups: budget.topUps || undefined, budget_exhausted: r.budgetExhausted || undefined });
    return r;
  };
  const tokens = (r: PumpResult) => ({ promptTokens, cachedTokens: r.cachedTokens, completionTokens: r.completionTokens });
  const usageOf = (r: PumpResult) => out.usage(promptTokens, r.cachedTokens, r.completionTokens, life.costMicros(tokens(r)));
  const storeIfCacheable = (r: PumpResult) => {
    if (cacheKey && ttl !== null && (r.finishReason === "stop" || r.finishReason === "length") && !r.budgetExhausted) {
      c.executionCtx.waitUntil(responseCache.store(cacheKey, { text, finishReason: r.finishReason, completionTokens: r.completionTokens }, ttl));
    }
  };
  const logResult = (status: number, r: PumpResult) => life.finish(status, { finish_reason: r.finishReason, ttft_ms: r.ttftMs, error: r.error });

  if (!p.stream) return nonStreaming();

  const sse = new SseChannel(() => life.clientGone());
  sse.send(out.chunk(meta, { role: "assistant", content: "" }));
  c.executionCtx.waitUntil(
    (async () => {
      const r = await run((t) => sse.send(out.chunk(meta, { content: t })));
      life.settle({ ...tokens(r), status: statusOf(r) });
      const u = usageOf(r);
      if (r.finishReason === "error") {
        sse.send(out.chunk(meta, { content: "" }, { finishReason: "error" }, u));
        sse.send(backendError().body());
      } else if (r.finishReason !== "cancelled") {
        sse.send(out.chunk(meta, { content: "" }, endingOf(r), u));
        if (p.includeUsage) sse.send(out.usageChunk(meta, u));
        sse.done();
        storeIfCacheable(r);
      }
      sse.close();
      logResult(r.finishReason === "cancelled" ? CLIENT_CLOSED : 200, r);
    })(),
  );
  return new Response(sse.readable, { status: 200, headers: { ...SSE_HEADERS, ...headers } });

  async function nonStreaming(): Promise<Response> {
    // "waiting" until the answer or the commit deadline, whichever comes first, decides how it is sent.
    let phase: "waiting" | "answered" | "committed" = "waiting";
    const body = new BodyChannel(() => life.clientGone());
    let lastWrite = 0;
    const keepAlive = () => {
      if (phase !== "committed" || Date.now() - lastWrite < HEARTBEAT_MS) return;
      lastWrite = Date.now();
      body.write(" ");
    };
    let answered!: (r: PumpResult | null) => void;
    const answer = new Promise<PumpResult | null>((resolve) => (answered = resolve));
    const timer = setTimeout(() => {
      if (phase !== "waiting") return;
      phase = "committed";
      answered(null);
    }, COMMIT_AFTER_MS);

    // Generation, drain and settle run under waitUntil: a client that leaves mid-way is still billed
    // exactly, after the drain.
    const work = run(() => true, keepAlive).then((r) => {
      clearTimeout(timer);
      if (phase === "waiting") {
        phase = "answered";
        // Nothing was delivered when the backend failed: nothing is charged.
        if (r.finishReason === "error") life.settleEmpty("error");
        else life.settle({ ...tokens(r), status: statusOf(r) });
        answered(r);
        return;
      }
      // Committed: the body carries whatever was generated, a failure included, and is billed as such.
      life.settle({ ...tokens(r), status: statusOf(r) });
      if (r.finishReason !== "cancelled") {
        body.write(JSON.stringify(out.completion(meta, text, endingOf(r), usageOf(r))));
        if (r.finishReason !== "error") storeIfCacheable(r);
      }
      body.close();
      logResult(r.finishReason === "cancelled" ? CLIENT_CLOSED : 200, r);
    });
    c.executionCtx.waitUntil(work);

    const r = await answer;
    if (r === null) {
      lastWrite = Date.now();
      body.write(" ");
      return new Response(body.readable, { status: 200, headers: { ...headers, ...STREAMED_JSON_HEADERS } });
    }
    if (r.finishReason === "cancelled") {
      logResult(CLIENT_CLOSED, r);
      return new Response(null, { status: CLIENT_CLOSED });
    }
    if (r.finishReason === "error") {
      logResult(502, r);
      return c.json(backendError().body(), 502, headers);
    }
    storeIfCacheable(r);
    logResult(200, r);
    return c.json(out.completion(meta, text, endingOf(r), usageOf(r)), 200, headers);
  }
}

/** Replays a cached completion; bills the prompt as cached tokens only (response-cache.ts). */
async function serveHit(
  c: Context<AppEnv>,
  life: Lifecycle,
  tier: Tier,
  p: ChatParams,
  meta: out.Meta,
  promptTokens: number,
  hit: responseCache.CachedCompletion,
): Promise<Response> {
  const admitted = await life.admit(tier.pricing, promptTokens, 0);
  // The usage reported is what is billed: the prompt, as cached tokens; nothing was generated.
  const billed = { promptTokens, cachedTokens: promptTokens, completionTokens: 0 };
  life.settle({ ...billed, status: "cache_hit" });
  const u = out.usage(promptTokens, promptTokens, 0, life.costMicros(billed));
  const headers = { ...admitted.headers, "x-cache": "HIT" };
  life.finish(200, { finish_reason: hit.finishReason, completion_tokens: hit.completionTokens, ttft_ms: Date.now() - life.startedAt });
  const end: out.Ending = { finishReason: hit.finishReason };
  if (!p.stream) return c.json(out.completion(meta, hit.text, end, u), 200, headers);
  const frames = [
    out.chunk(meta, { role: "assistant", content: "" }),
    ...(hit.text ? [out.chunk(meta, { content: hit.text })] : []),
    out.chunk(meta, { content: "" }, end, u),
    ...(p.includeUsage ? [out.usageChunk(meta, u)] : []),
  ];
  return new Response(frames.map(sseFrame).join("") + SSE_DONE, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}
