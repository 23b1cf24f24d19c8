/**
 * The owner of one metered chat completion: response-cache lookup -> admit -> dispatch -> pump ->
 * settle once, yielding CompletionEvents (events.ts). Knows no HTTP: an HTTP route, a queue consumer or a
 * test calls it with a MeteredRequest (env, account, request id, cancellation signal, waitUntil).
 *
 *  - Cancellation is one signal: the caller's, the key's revocation and the consumer abandoning the
 *    events, joined by AbortSignal.any. Whichever fires, the replica is cancelled and drained, and what it
 *    generated is billed `cancelled`; before any replica admitted the request it costs nothing.
 *  - Settle happens in one place, the generator's `finally`, once whatever happens: a refusal or failure
 *    before the first token settles nothing charged; a failure after it bills what was delivered.
 *  - The consumer must iterate `events` to the end (for await): the settle runs when it does.
 */
import type { GenerateRequest, ResponseFormat } from "../../contract/wire";
import { isRevokedNow } from "../billing/keys";
import type { Pricing, UsageStatus } from "../billing/types";
import { ApiError } from "../errors";
import { cancelGenerate } from "../serving/backend";
import { ClientGone, type AttemptLog, type Dispatched } from "../serving/dispatch";
import { startGeneration, type OpenStream } from "../serving/generation";
import { replicaRouter, routingKey } from "../serving/router";
import { replicasOf } from "../serving/live-replicas";
import type { Tier } from "../config/tiers";
import { replicaTimeouts } from "../serving/timeouts";
import { EOS_ID, createStopMatcher } from "../tokenizer";
import type { CompletionEvent } from "./events";
import type { LogprobContent } from "../../contract/api-chat";
import type { MeteredRequest, Settlement, Tokens } from "./metered";
import { pumpGeneration, type PumpResult } from "./pump";
import * as responseCache from "./response-cache";
import { withToolCalls } from "./tool-calls";
import { planKey, type ToolPlan } from "../tools";

/**
 * How often a running completion re-reads its key's revocation from D1 (not the 3 s isolate cache). A
 * revoked key's completions end within this plus a drain; one D1 read per interval per open completion.
 * Tests shorten it.
 */
export const REVOCATION_POLL = { ms: 2_000 };

export const backendError = () =>
  new ApiError(502, "The model failed while generating. Please retry.", "api_error", "backend_error");

/** The error a completion ends with when its key was revoked mid-answer. */
export const keyRevoked = () =>
  new ApiError(401, "This API key was revoked; the answer was stopped.", "authentication_error", "key_revoked");

/** The sampling side of a request (api/chat-request.ts ChatParams is a superset). */
export interface CompletionParams {
  /** The public tier name. */
  model: string;
  temperature: number;
  topP: number;
  seed: number | undefined;
  stop: string[];
  responseFormat: ResponseFormat | null;
  /** Per-token logprobs with this many alternatives; null when not requested. */
  topLogprobs: number | null;
  /** Tool calling (tools/plan.ts); null or absent without tools. */
  tools?: ToolPlan | null;
  /** Rendered as it comes (SSE): tool calls stream live rather than at the end. */
  stream?: boolean;
}

/** Who asked: an HTTP client now, or one line of a batch (priced and recorded by the batch layer). */
export type CompletionSource = { kind: "interactive" } | { kind: "batch"; batchId: string; line: number };

export interface CompletionInput {
  request: MeteredRequest;
  tier: Tier;
  params: CompletionParams;
  /** The prompt's ids (chat template applied); shorter than the tier's context window. */
  promptIds: number[];
  /** Completion tokens at most: the caller's limit clamped to the context left. */
  maxTokens: number;
  /** Replay and store deterministic answers for this many seconds (x-cache-ttl); null: no caching. */
  cacheTtl: number | null;
  source?: CompletionSource;
}

export interface Completion {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  /** x-ratelimit-* headers, and x-cache when the request asked for caching. */
  headers: Record<string, string>;
  /** Iterate once, to the end. */
  events: AsyncIterable<CompletionEvent>;
  /**
   * The consumer answered a backend failure with nothing of the completion (a 502 before any byte):
   * nothing is charged. Call on the terminal event, before the iteration ends.
   */
  nothingDelivered(): void;
  /** Writes the request log line and analytics point with the status the caller answered with. */
  logResult(status: number): void;
}

export function completionId(): string {
  return `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
}

const EMPTY: Tokens = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
const statusOf = (r: PumpResult): UsageStatus =>
  r.finishReason === "cancelled" ? "cancelled" : r.finishReason === "error" ? "error" : "ok";

/** Marks the end of admit + dispatch inside the generator; never reaches a consumer. */
const STARTED = Symbol("started");

/**
 * Starts a completion: resolves once a replica has started it (or a cached answer is found), with the
 * events to render. Rejects with the ApiError (or ClientGone) that ended it before anything was generated.
 */
export async function startCompletion(input: CompletionInput): Promise<Completion> {
  const { request: req, tier, params: p, promptIds, maxTokens } = input;
  const promptTokens = promptIds.length;
  const pricing: Pricing = tier.pricing;
  const headers: Record<string, string> = {};
  const abandon = new AbortController();
  const revoked = new AbortController();
  const signal = AbortSignal.any([req.signal, revoked.signal, abandon.signal]);
  let undelivered = false;
  let logExtra: Record<string, unknown> = {};

  const usageEvent = (t: Tokens): CompletionEvent => ({
    type: "usage",
    promptTokens: t.promptTokens,
    cachedTokens: t.cachedTokens,
    completionTokens: t.completionTokens,
    costMicros: req.costMicros(t),
  });

  /** The cache key when this request may be cached (deterministic, no logprobs, cache configured). */
  async function cacheKeyFor(): Promise<Request | null> {
    if (input.cacheTtl === null) return null;
    const secret = req.env.CACHE_KEY_SECRET;
    if (
      !responseCache.isDeterministic(p.temperature, p.seed) ||
      p.topLogprobs !== null ||
      !responseCache.cacheEnabled(secret)
    ) {
      req.log.cache = "BYPASS";
      return null;
    }
    return responseCache.cacheKey(
      {
        keyId: req.account.keyId,
        model: p.model,
        backendModel: tier.backendModel,
        promptIds,
        temperature: p.temperature,
        topP: p.topP,
        seed: p.seed,
        stop: p.stop,
        maxTokens,
        responseFormat: p.responseFormat,
        tools: planKey(p.tools ?? null),
      },
      secret,
    );
  }

  async function dispatchToReplica(): Promise<Dispatched<OpenStream> & { backend: AbortController }> {
    // The backend fetch is never aborted because the client left: the replica is cancelled and its
    // stream drained, so its final usage is billed.
    const backend = new AbortController();
    const genReq: GenerateRequest = {
      model: tier.backendModel,
      input_ids: promptIds,
      max_tokens: maxTokens,
      temperature: p.temperature,
      top_p: p.topP,
      seed: p.seed,
      stop_token_ids: [EOS_ID],
      cache_salt: req.account.cacheSalt,
      request_id: req.requestId,
      // Echoed in the backend's usage record: a request whose worker died is billed from it (billing/report-merge.ts).
      key_id: req.account.keyId,
      tier: p.model,
      ...(p.responseFormat ? { response_format: p.responseFormat } : {}),
      ...(p.tools?.formatTrigger ? { format_trigger: p.tools.formatTrigger } : {}),
      ...(p.topLogprobs !== null ? { logprobs: true, top_logprobs: p.topLogprobs } : {}),
      ...(input.source?.kind === "batch" ? { priority: "batch" as const } : {}),
    };
    const order = replicaRouter.rank(replicasOf(tier), routingKey(promptIds, req.account.cacheSalt));
    const failures: AttemptLog[] = [];
    try {
      const starting = startGeneration(
        replicaRouter,
        order,
        req.env.BACKEND_TOKEN,
        genReq,
        { client: signal, backend: backend.signal },
        failures,
        replicaTimeouts(req.env),
      );
      // Keeps the request's I/O alive through a disconnect, so what follows (settle) still runs.
      req.waitUntil(starting.catch(() => {}));
      const started = await starting;
      replicaRouter.recordSuccess(started.replica);
      Object.assign(req.log, {
        replica: started.replica,
        attempts: started.attempts,
        failures: failures.length ? failures : undefined,
      });
      return { ...started, backend };
    } catch (err) {
      req.log.failures = failures;
      throw err;
    }
  }

  /** Runs the generation to its end (drain included), pushing events; never rejects. */
  async function pump(
    started: Dispatched<OpenStream> & { backend: AbortController },
    push: (ev: CompletionEvent) => void,
  ): Promise<PumpResult & { text: string }> {
    const budget = req.slices(maxTokens);
    let text = "";
    let r: PumpResult;
    try {
      r = await pumpGeneration(started.value, {
        matcher: createStopMatcher(p.stop),
        onText: (t, lp?: LogprobContent[]) => {
          text += t;
          if (lp) push({ type: "logprobs", content: lp });
          push({ type: "delta", text: t });
          return !signal.aborted;
        },
        logprobs: p.topLogprobs !== null,
        clientSignal: signal,
        cancelBackend: () => cancelGenerate(started.replica, req.env.BACKEND_TOKEN, req.requestId),
        abortBackend: () => started.backend.abort(),
        stallMs: replicaTimeouts(req.env).stallMs,
        startedAt: req.startedAt,
        budget,
      });
    } catch (err) {
      // pumpGeneration handles backend and client failures itself; this is a bug guard.
      r = {
        finishReason: "error",
        completionTokens: 0,
        cachedTokens: 0,
        ttftMs: null,
        backendFailed: false,
        error: String(err),
      };
      started.backend.abort();
    }
    started.release();
    if (r.backendFailed) replicaRouter.recordFailure(started.replica);
    Object.assign(req.log, {
      budget_top_ups: budget.topUps || undefined,
      budget_exhausted: r.budgetExhausted || undefined,
    });
    return { ...r, text };
  }

  /** Ends this completion like a client that left if its key is revoked meanwhile; returns the stop. */
  function watchRevocation(): () => void {
    const timer = setInterval(() => {
      isRevokedNow(req.env.DB, req.account.keyId)
        .then((gone) => {
          if (!gone) return;
          clearInterval(timer);
          revoked.abort();
        })
        .catch(() => {}); // D1 unavailable: keep serving (fail open; the key cache still refuses new requests)
    }, REVOCATION_POLL.ms);
    return () => clearInterval(timer);
  }

  /** The settlement of a finished generation. */
  const settlementOf = (r: PumpResult): Settlement => ({
    promptTokens,
    cachedTokens: r.cachedTokens,
    completionTokens: r.completionTokens,
    status: statusOf(r),
    // After a backend failure, what the client received is final: no backend report raises it.
    ...(r.finishReason === "error" ? { deliveredFinal: true } : {}),
  });

  async function* run(): AsyncGenerator<CompletionEvent | typeof STARTED> {
    let admitted = false;
    // What is billed unless the code below learns more: nothing (a failure before the first token is final).
    let settlement: Settlement = { ...EMPTY, status: "error", deliveredFinal: true };
    let pumping: Promise<PumpResult & { text: string }> | null = null;
    let unwatch = () => {};
    let toCache: { key: Request; value: responseCache.CachedCompletion } | null = null;
    try {
      const key = await cacheKeyFor();
      const hit = key ? await responseCache.lookup(key) : null;
      if (key) req.log.cache = hit ? "HIT" : "MISS";
      if (req.log.cache) headers["x-cache"] = req.log.cache;

      if (hit) {
        // Billed as the prompt in cached tokens only; nothing is generated. The usage shown is what is billed.
        Object.assign(headers, (await req.admit(pricing, promptTokens, 0)).headers);
        admitted = true;
        const billed = { promptTokens, cachedTokens: promptTokens, completionTokens: 0 };
        settlement = { ...billed, status: "cache_hit" };
        logExtra = {
          finish_reason: hit.finishReason,
          completion_tokens: hit.completionTokens,
          ttft_ms: Date.now() - req.startedAt,
        };
        yield STARTED;
        if (hit.text) yield { type: "delta", text: hit.text };
        yield usageEvent(billed);
        yield { type: "finish", reason: hit.finishReason };
        return;
      }

      Object.assign(headers, (await req.admit(pricing, promptTokens, maxTokens)).headers);
      admitted = true;
      let started: Awaited<ReturnType<typeof dispatchToReplica>>;
      try {
        started = await dispatchToReplica();
      } catch (err) {
        if (err instanceof ClientGone) settlement = { ...EMPTY, status: "cancelled" };
        throw err;
      }
      yield STARTED;

      // The pump runs at the backend's pace; its events queue here until the consumer takes them.
      const queue: CompletionEvent[] = [];
      let wake: (() => void) | null = null;
      let ended = false;
      unwatch = watchRevocation();
      pumping = pump(started, (ev) => {
        queue.push(ev);
        wake?.();
      });
      void pumping.then(() => {
        ended = true;
        wake?.();
      });
      while (true) {
        while (queue.length) yield queue.shift()!;
        if (ended) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
      const r = await pumping;
      unwatch();
      settlement = settlementOf(r);
      logExtra = { finish_reason: r.finishReason, ttft_ms: r.ttftMs, error: r.error };
      yield usageEvent(settlement);
      if (key && (r.finishReason === "stop" || r.finishReason === "length") && !r.budgetExhausted)
        toCache = { key, value: { text: r.text, finishReason: r.finishReason, completionTokens: r.completionTokens } };
      if (revoked.signal.aborted) yield { type: "error", cause: "revoked", error: keyRevoked() };
      else if (r.finishReason === "error") yield { type: "error", cause: "backend", error: backendError() };
      else yield { type: "finish", reason: r.finishReason, ...(r.budgetExhausted ? { budgetExhausted: true } : {}) };
    } finally {
      unwatch();
      abandon.abort(); // a consumer that stopped early: a running pump cancels, drains and ends
      if (pumping) settlement = settlementOf(await pumping);
      // Nothing of a failed answer reached the client (a 502): nothing is charged.
      if (undelivered && settlement.status === "error")
        settlement = { ...EMPTY, status: "error", deliveredFinal: true };
      // The one settle of a chat completion. A refusal at admission settles nothing here (admit wrote its record).
      if (admitted) req.settle(settlement);
      if (toCache && input.cacheTtl !== null)
        req.waitUntil(responseCache.store(toCache.key, toCache.value, input.cacheTtl));
    }
  }

  const gen = run();
  // Runs the cache lookup, admission and dispatch: their refusals reject here, already settled.
  await gen.next();
  const raw: AsyncIterable<CompletionEvent> = {
    [Symbol.asyncIterator]: () => gen as AsyncGenerator<CompletionEvent>,
  };
  const events = p.tools?.parse ? withToolCalls(raw, p.tools, p.stream === true) : raw;
  return {
    id: completionId(),
    created: Math.floor(Date.now() / 1000),
    model: p.model,
    headers,
    events,
    nothingDelivered: () => void (undelivered = true),
    logResult: (status) => req.finish(status, logExtra),
  };
}
