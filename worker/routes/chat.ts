/**
 * POST /v1/chat/completions: validate -> tokenize (chat template) -> context check -> response cache
 * -> admit -> backend (prefix-aware replica, retries before the first token) -> relay -> settle once.
 *
 * Decisions (see README "API"):
 *  - temperature defaults to 0.7 (Mistral); max_tokens defaults to, and is clamped to, the context left.
 *  - finish_reason: "stop" | "length" (the backend's "model_length" is reported as "length") | "error".
 *  - A failure after the first streamed token: a final chunk with finish_reason "error" and the usage
 *    delivered so far, then `data: {"error": {...}}` and no [DONE].
 *  - Billing: prompt = edge-tokenized prompt; completion = the backend's count of generated tokens.
 *    On a stop string or a client disconnect the replica is cancelled and its stream drained to the
 *    final `done` (generation.ts), so tokens generated after the edge stopped delivering are billed too;
 *    the streamed final chunk (usage) waits for that drain. A non-streamed request that fails costs
 *    nothing; a client that leaves before any replica admitted the request costs nothing.
 */
import { Hono, type Context } from "hono";
import type { AppEnv } from "../app";
import type { GenerateRequest } from "../../contract/wire";
import { admit, assertTierAllowed } from "../billing/meter";
import { ApiError, badRequest } from "../errors";
import { EOS_ID, applyChatTemplate, createStopMatcher } from "../tokenizer";
import * as out from "../inference/chat-response";
import { contextExceeded, parseChatBody, readJson, type ChatParams } from "../inference/chat-request";
import { ClientGone } from "../inference/dispatch";
import { cancelGenerate } from "../inference/backend";
import { pumpGeneration, startGeneration, type PumpResult } from "../inference/generation";
import type { AttemptLog } from "../inference/dispatch";
import { RequestScope } from "../inference/request-context";
import * as responseCache from "../inference/response-cache";
import { replicaRouter, routingKey } from "../inference/router";
import { SSE_HEADERS, SseChannel } from "../inference/sse";
import { getTiers, modelNotFound, type Tier } from "../inference/tiers";

export const chatRoutes = new Hono<AppEnv>();

/** A status for requests whose client left before any response (nginx's convention). */
const CLIENT_CLOSED = 499;

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
  const scope = new RequestScope(c, "chat");
  let model = "";
  try {
    return await handle(c, scope, (m) => (model = m));
  } catch (err) {
    const status = err instanceof ApiError ? err.status : 500;
    if (!scope.isSettled) scope.reject(model);
    scope.finish(status, { error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
});

async function handle(c: Context<AppEnv>, scope: RequestScope, setModel: (m: string) => void): Promise<Response> {
  const p = parseChatBody(await readJson(c.req.raw));
  setModel(p.model);
  scope.log.model = p.model;
  scope.log.stream = p.stream;
  const tier = chatTier(c, p.model);
  const ttl = responseCache.requestedTtl(c.req.header(responseCache.CACHE_TTL_HEADER));

  const promptIds = applyChatTemplate(p.messages);
  const promptTokens = promptIds.length;
  if (promptTokens >= tier.contextWindow) throw contextExceeded(tier.contextWindow, promptTokens);
  const room = tier.contextWindow - promptTokens;
  const maxTokens = Math.min(p.maxTokens ?? room, room);
  if (c.env.LOG_PROMPTS === "1") scope.log.prompt = p.messages;

  const meta: out.Meta = { id: out.completionId(), created: Math.floor(Date.now() / 1000), model: p.model };

  let cacheKey: Request | null = null;
  if (ttl !== null) {
    if (!responseCache.isDeterministic(p.temperature, p.seed)) scope.log.cache = "BYPASS";
    else {
      cacheKey = await responseCache.cacheKey({
        keyId: scope.account.keyId, model: p.model, promptIds, temperature: p.temperature, topP: p.topP, seed: p.seed, stop: p.stop, maxTokens,
      });
      const hit = await responseCache.lookup(cacheKey);
      scope.log.cache = hit ? "HIT" : "MISS";
      if (hit) return serveHit(c, scope, tier, p, meta, promptTokens, hit);
    }
  }

  // admit() writes its own record when it refuses: nothing else to settle if it throws.
  let admission;
  try {
    admission = await admit(c.env, scope.account, { requestId: scope.requestId, model: p.model, pricing: tier.pricing, promptTokens, maxCompletionTokens: maxTokens }, scope.ctx);
  } catch (err) {
    scope.markSettled();
    throw err;
  }
  const headers: Record<string, string> = { ...admission.headers };
  if (scope.log.cache) headers["x-cache"] = scope.log.cache;

  // Two signals (generation.ts): the client's, and the backend fetch's. The fetch is never aborted just
  // because the client left: the replica is cancelled and its stream drained, so its final usage is billed.
  const client = new AbortController();
  const backend = new AbortController();
  const onClientGone = () => client.abort();
  c.req.raw.signal?.addEventListener("abort", onClientGone);

  const genReq: GenerateRequest = {
    model: tier.backendModel,
    input_ids: promptIds,
    max_tokens: maxTokens,
    temperature: p.temperature,
    top_p: p.topP,
    seed: p.seed,
    stop_token_ids: [EOS_ID],
    cache_salt: scope.account.cacheSalt,
    request_id: scope.requestId,
  };
  const order = replicaRouter.rank(tier.backends, routingKey(promptIds, scope.account.cacheSalt));
  const failures: AttemptLog[] = [];
  const nothing = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };

  let started;
  try {
    const starting = startGeneration(replicaRouter, order, c.env.BACKEND_TOKEN, genReq, { client: client.signal, backend: backend.signal }, failures);
    // Keeps the request's I/O alive through a disconnect, so what follows (settle) still runs.
    c.executionCtx.waitUntil(starting.catch(() => {}));
    started = await starting;
  } catch (err) {
    scope.log.failures = failures;
    if (err instanceof ClientGone) {
      scope.settle(p.model, tier.pricing, { ...nothing, status: "cancelled" });
      scope.finish(CLIENT_CLOSED, { finish_reason: "cancelled" });
      return new Response(null, { status: CLIENT_CLOSED });
    }
    scope.settle(p.model, tier.pricing, { ...nothing, status: "error" });
    throw err;
  }
  replicaRouter.recordSuccess(started.replica);
  Object.assign(scope.log, { replica: started.replica, attempts: started.attempts, failures: failures.length ? failures : undefined });

  let text = "";
  const finishGeneration = (r: PumpResult) => {
    started.release();
    if (r.backendFailed) replicaRouter.recordFailure(started.replica);
    c.req.raw.signal?.removeEventListener("abort", onClientGone);
  };
  const run = (onText: (t: string) => boolean) =>
    pumpGeneration(started.value, {
      matcher: createStopMatcher(p.stop),
      onText: (t) => {
        text += t;
        return onText(t);
      },
      clientSignal: client.signal,
      cancelBackend: () => cancelGenerate(started.replica, c.env.BACKEND_TOKEN, scope.requestId),
      abortBackend: () => backend.abort(),
      startedAt: scope.startedAt,
    });
  const storeIfCacheable = (r: PumpResult) => {
    if (cacheKey && ttl !== null && (r.finishReason === "stop" || r.finishReason === "length")) {
      c.executionCtx.waitUntil(responseCache.store(cacheKey, { text, finishReason: r.finishReason, completionTokens: r.completionTokens }, ttl));
    }
  };
  const logResult = (status: number, r: PumpResult) =>
    scope.finish(status, { finish_reason: r.finishReason, ttft_ms: r.ttftMs, error: r.error });

  if (!p.stream) {
    // Generation, drain and settle run under waitUntil: a client that leaves mid-way is still billed
    // exactly, after the drain.
    const work = (async () => {
      const r = await run(() => true);
      finishGeneration(r);
      if (r.finishReason === "error") {
        // Nothing was delivered: nothing is charged.
        scope.settle(p.model, tier.pricing, { ...nothing, status: "error" });
      } else {
        const status = r.finishReason === "cancelled" ? "cancelled" : "ok";
        scope.settle(p.model, tier.pricing, { promptTokens, cachedTokens: r.cachedTokens, completionTokens: r.completionTokens, status });
      }
      return r;
    })();
    c.executionCtx.waitUntil(work);
    const r = await work;
    if (r.finishReason === "cancelled") {
      logResult(CLIENT_CLOSED, r);
      return new Response(null, { status: CLIENT_CLOSED });
    }
    if (r.finishReason === "error") {
      logResult(502, r);
      const e = backendError();
      return c.json(e.body(), 502, headers);
    }
    const u = out.usage(promptTokens, r.cachedTokens, r.completionTokens);
    storeIfCacheable(r);
    logResult(200, r);
    return c.json(out.completion(meta, text, r.finishReason, u), 200, headers);
  }

  const sse = new SseChannel(onClientGone);
  sse.send(out.chunk(meta, { role: "assistant", content: "" }));
  c.executionCtx.waitUntil(
    (async () => {
      let r: PumpResult;
      try {
        r = await run((t) => sse.send(out.chunk(meta, { content: t })));
      } catch (err) {
        // pumpGeneration handles backend and client failures itself; this is a bug guard.
        r = { finishReason: "error", completionTokens: 0, cachedTokens: 0, ttftMs: null, backendFailed: false, error: String(err) };
        backend.abort();
      }
      finishGeneration(r);
      const u = out.usage(promptTokens, r.cachedTokens, r.completionTokens);
      const status = r.finishReason === "cancelled" ? "cancelled" : r.finishReason === "error" ? "error" : "ok";
      scope.settle(p.model, tier.pricing, { promptTokens, cachedTokens: r.cachedTokens, completionTokens: r.completionTokens, status });
      if (r.finishReason === "error") {
        sse.send(out.chunk(meta, { content: "" }, "error", u));
        sse.send(backendError().body());
      } else if (r.finishReason !== "cancelled") {
        sse.send(out.chunk(meta, { content: "" }, r.finishReason, u));
        if (p.includeUsage) sse.send(out.usageChunk(meta, u));
        sse.done();
        storeIfCacheable(r);
      }
      sse.close();
      logResult(r.finishReason === "cancelled" ? CLIENT_CLOSED : 200, r);
    })(),
  );
  return new Response(sse.readable, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}

/** Replays a cached completion; bills the prompt as cached tokens only (response-cache.ts). */
async function serveHit(
  c: Context<AppEnv>,
  scope: RequestScope,
  tier: Tier,
  p: ChatParams,
  meta: out.Meta,
  promptTokens: number,
  hit: responseCache.CachedCompletion,
): Promise<Response> {
  let admission;
  try {
    admission = await admit(c.env, scope.account, { requestId: scope.requestId, model: p.model, pricing: tier.pricing, promptTokens, maxCompletionTokens: 0 }, scope.ctx);
  } catch (err) {
    scope.markSettled();
    throw err;
  }
  scope.settle(p.model, tier.pricing, { promptTokens, cachedTokens: promptTokens, completionTokens: 0, status: "cache_hit" });
  // The usage reported is what is billed: the prompt, as cached tokens; nothing was generated.
  const u = out.usage(promptTokens, promptTokens, 0);
  const headers = { ...admission.headers, "x-cache": "HIT" };
  scope.finish(200, { finish_reason: hit.finishReason, completion_tokens: hit.completionTokens, ttft_ms: Date.now() - scope.startedAt });
  if (!p.stream) return c.json(out.completion(meta, hit.text, hit.finishReason, u), 200, headers);
  const frames = [
    out.chunk(meta, { role: "assistant", content: "" }),
    ...(hit.text ? [out.chunk(meta, { content: hit.text })] : []),
    out.chunk(meta, { content: "" }, hit.finishReason, u),
    ...(p.includeUsage ? [out.usageChunk(meta, u)] : []),
  ];
  const body = frames.map((f) => `data: ${JSON.stringify(f)}\n\n`).join("") + "data: [DONE]\n\n";
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}
