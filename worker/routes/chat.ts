/**
 * POST /v1/chat/completions: validate -> tokenize (chat template) -> context check -> response cache
 * -> admit (prompt + first budget slice) -> start on a replica (prefix-aware, retries before the first
 * token) -> relay (api/chat-relay.ts: SSE or JSON, budget slices as tokens flow) -> settle once
 * (api/lifecycle.ts).
 *
 * Decisions (see README "API"):
 *  - temperature defaults to 0.7 (Mistral); max_tokens defaults to, and is clamped to, the context left.
 *  - finish_reason: "stop" | "length" (the backend's "model_length", or the budget refusing the next
 *    slice, which also sets `budget_exhausted: true`) | "error".
 *  - A client that leaves is a cancellation in every mode: the replica is cancelled (POST /v1/cancel),
 *    drained to its final `done`, and exactly what it generated is billed with status `cancelled`; one
 *    that leaves before any replica admitted the request costs nothing.
 */
import type { Context } from "hono";
import type { GenerateRequest } from "../../contract/wire";
import { readJson } from "../api/body";
import { relay, replayHit } from "../api/chat-relay";
import { assertTierAllowed } from "../billing/meter";
import { badRequest } from "../errors";
import { factory, type AppEnv } from "../factory";
import * as out from "../api/chat-response";
import { contextExceeded, parseChatBody } from "../api/chat-request";
import { ClientGone, type AttemptLog } from "../serving/dispatch";
import { startGeneration } from "../serving/generation";
import { CLIENT_CLOSED, Lifecycle } from "../api/lifecycle";
import { chatPromptIds } from "../api/template";
import * as responseCache from "../api/response-cache";
import { replicaRouter, routingKey } from "../serving/router";
import { getTiers, modelNotFound, replicaTimeouts, type Tier } from "../serving/tiers";
import { EOS_ID } from "../tokenizer";

export const chatRoutes = factory.createApp();

function chatTier(c: Context<AppEnv>, model: string): Tier {
  const tier = getTiers(c.env.TIERS).get(model);
  if (!tier) throw modelNotFound(model);
  assertTierAllowed(c.get("account"), model);
  if (tier.kind !== "chat")
    throw badRequest(`The model '${model}' does not support chat completions.`, "model", "invalid_model");
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

async function handle(c: Context<AppEnv>, life: Lifecycle): Promise<Response> {
  const p = parseChatBody(await readJson(c.req.raw));
  life.setModel(p.model);
  life.log.stream = p.stream;
  const tier = chatTier(c, p.model);
  const ttl = responseCache.requestedTtl(c.req.header(responseCache.CACHE_TTL_HEADER));

  const promptIds = chatPromptIds(p.messages, life.account.cacheSalt);
  const promptTokens = promptIds.length;
  if (promptTokens >= tier.contextWindow) throw contextExceeded(tier.contextWindow, promptTokens);
  const room = tier.contextWindow - promptTokens;
  const maxTokens = Math.min(p.maxTokens ?? room, room);
  if (c.env.LOG_PROMPTS === "1") life.log.prompt = p.messages;

  const meta: out.Meta = { id: out.completionId(), created: Math.floor(Date.now() / 1000), model: p.model };

  let cacheKey: Request | null = null;
  if (ttl !== null) {
    // Cached answers keep no logprobs; a structured answer is cached under its response_format.
    const secret = c.env.CACHE_KEY_SECRET;
    if (
      !responseCache.isDeterministic(p.temperature, p.seed) ||
      p.topLogprobs !== null ||
      !responseCache.cacheEnabled(secret)
    )
      life.log.cache = "BYPASS";
    else {
      cacheKey = await responseCache.cacheKey(
        {
          keyId: life.account.keyId,
          model: p.model,
          backendModel: tier.backendModel,
          promptIds,
          temperature: p.temperature,
          topP: p.topP,
          seed: p.seed,
          stop: p.stop,
          maxTokens,
          responseFormat: p.responseFormat,
        },
        secret,
      );
      const hit = await responseCache.lookup(cacheKey);
      life.log.cache = hit ? "HIT" : "MISS";
      if (hit) return replayHit(c, life, tier.pricing, p, meta, promptTokens, hit);
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
    // Echoed in the backend's usage record: a request whose worker died is billed from it (worker/usage/merge.ts).
    key_id: life.account.keyId,
    tier: p.model,
    ...(p.responseFormat ? { response_format: p.responseFormat } : {}),
    ...(p.topLogprobs !== null ? { logprobs: true, top_logprobs: p.topLogprobs } : {}),
    // A batch line only fills capacity that interactive requests leave idle (gpu-backend scheduler).
    ...(life.batchId ? { priority: "batch" as const } : {}),
  };
  const order = replicaRouter.rank(tier.backends, routingKey(promptIds, life.account.cacheSalt));
  const failures: AttemptLog[] = [];

  let started: Awaited<ReturnType<typeof startGeneration>>;
  try {
    const starting = startGeneration(
      replicaRouter,
      order,
      c.env.BACKEND_TOKEN,
      genReq,
      { client: life.client.signal, backend: backend.signal },
      failures,
      replicaTimeouts(c.env),
    );
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
  Object.assign(life.log, {
    replica: started.replica,
    attempts: started.attempts,
    failures: failures.length ? failures : undefined,
  });

  const cache = cacheKey && ttl !== null ? { key: cacheKey, ttl } : null;
  return relay({ c, life, p, meta, promptTokens, maxTokens, headers, started, backend, cache });
}
