/**
 * Relaying a started chat generation to the client, and replaying a cached one: every frame and body
 * shape of /v1/chat/completions is written here (chat-response.ts builds the objects, sse.ts frames them).
 *
 *  - Streaming: SSE chunks as text arrives; the chunk with finish_reason carries usage (and
 *    `budget_exhausted` when a refused budget slice ended it); a failure after the first token is a
 *    chunk with finish_reason "error" and the usage so far, then `data: {"error": ...}` and no [DONE].
 *  - Non-streaming: an answer ready within COMMIT_AFTER_MS is sent whole with its real status (a 502 if
 *    the backend failed, nothing charged). A longer one commits a 200 and JSON headers then and writes a
 *    space every HEARTBEAT_MS until the JSON follows (leading whitespace is valid JSON): clients' header
 *    timeouts (Node fetch: 300 s) never fire and retry a paid request, and the runtime sees a client that
 *    left even where request.signal does not fire for a request without a response (wrangler dev). A
 *    backend failure after that commit is a 200 whose choice carries the text so far and finish_reason
 *    "error", billed like the streamed case.
 *  - Either way a client that leaves is a cancellation: the replica is cancelled and drained, and the
 *    lifecycle settles `cancelled` with what it generated.
 */
import type { Context } from "hono";
import type { AppEnv } from "../factory";
import type { Pricing, UsageStatus } from "../billing/types";
import { ApiError } from "../errors";
import { createStopMatcher } from "../tokenizer";
import * as out from "./chat-response";
import type { ChatParams } from "./chat-request";
import { cancelGenerate } from "../serving/backend";
import type { Dispatched } from "../serving/dispatch";
import { pumpGeneration, type OpenStream, type PumpResult } from "../serving/generation";
import { CLIENT_CLOSED, keyRevoked, type Lifecycle, type Settlement } from "./lifecycle";
import type { LogprobContent } from "./logprobs";
import * as responseCache from "./response-cache";
import { replicaRouter } from "../serving/router";
import { replicaTimeouts } from "../serving/tiers";
import { BodyChannel, SSE_DONE, SSE_HEADERS, STREAMED_JSON_HEADERS, SseChannel, sseFrame } from "./sse";
import { deltaOf, messageOf, toolCallsJson, wholeDelta } from "./tool-response";
import { type ToolEvent, type ToolPlan, ToolStream } from "../tools";

/** Non-streaming: how long an answer may take before its 200 and headers are committed. */
export const COMMIT_AFTER_MS = 500;
/** Non-streaming, once committed: at most one keep-alive space per this interval, written as tokens arrive. */
export const HEARTBEAT_MS = 500;

export const backendError = () =>
  new ApiError(502, "The model failed while generating. Please retry.", "api_error", "backend_error");

const statusOf = (r: PumpResult): UsageStatus =>
  r.finishReason === "cancelled" ? "cancelled" : r.finishReason === "error" ? "error" : "ok";
const endingOf = (r: PumpResult): out.Ending => ({
  finishReason: r.finishReason === "cancelled" ? "stop" : r.finishReason,
  budgetExhausted: r.budgetExhausted,
});

/** Tools: the buffered events of an answer -> its content, calls and finish reason (tools/stream.ts). */
function toolAnswer(tools: ToolStream, events: ToolEvent[], end: out.Ending) {
  const fin = tools.finish(end.finishReason);
  const m = messageOf([...events, ...fin.events]);
  return { text: m.content, end: { ...end, finishReason: fin.reason }, calls: toolCallsJson(m.calls) };
}

/** A ToolStream when the request's tools need its output parsed (not under tool_choice "none"). */
const toolStream = (plan: ToolPlan | null, live: boolean) => (plan?.parse ? new ToolStream(plan, live) : null);

/** A generation a replica has started (its first event is in), and what the answer needs. */
export interface StartedChat {
  c: Context<AppEnv>;
  life: Lifecycle;
  p: ChatParams;
  meta: out.Meta;
  promptTokens: number;
  maxTokens: number;
  /** x-ratelimit-* (and x-cache) headers for the response. */
  headers: Record<string, string>;
  started: Dispatched<OpenStream>;
  /** Aborts the backend fetch (a drain deadline or a failure; never because the client left). */
  backend: AbortController;
  /** Where to store a deterministic answer (x-cache-ttl), or null. */
  cache: { key: Request; ttl: number } | null;
}

/** Relays the generation as the client asked (stream or JSON) and settles it once, under waitUntil. */
export function relay(g: StartedChat): Promise<Response> {
  const { c, life, p, meta, promptTokens, maxTokens, headers, started, backend } = g;
  const budget = life.slices(maxTokens);
  // Raw generated text (cached as is); with tools, what the client sees is parsed from it.
  let text = "";
  const tools = toolStream(p.tools, p.stream);
  const wantLogprobs = p.topLogprobs !== null;
  const logprobs: LogprobContent[] = [];
  /** Runs the generation to its end (drain included) and releases the replica; never rejects. */
  const run = async (
    onText: (t: string, lp?: LogprobContent[]) => boolean,
    onEvent?: () => void,
  ): Promise<PumpResult> => {
    let r: PumpResult;
    try {
      r = await pumpGeneration(started.value, {
        matcher: createStopMatcher(p.stop),
        onText: (t, lp) => {
          text += t;
          if (lp) logprobs.push(...lp);
          return onText(t, lp);
        },
        logprobs: wantLogprobs,
        clientSignal: life.client.signal,
        cancelBackend: () => cancelGenerate(started.replica, c.env.BACKEND_TOKEN, life.requestId),
        abortBackend: () => backend.abort(),
        stallMs: replicaTimeouts(c.env).stallMs,
        startedAt: life.startedAt,
        budget,
        onEvent,
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
      backend.abort();
    }
    started.release();
    if (r.backendFailed) replicaRouter.recordFailure(started.replica);
    Object.assign(life.log, {
      budget_top_ups: budget.topUps || undefined,
      budget_exhausted: r.budgetExhausted || undefined,
    });
    return r;
  };
  const tokens = (r: PumpResult) => ({
    promptTokens,
    cachedTokens: r.cachedTokens,
    completionTokens: r.completionTokens,
  });
  /** The settlement of a finished pump: after a backend failure, what the client received is final. */
  const settlementOf = (r: PumpResult): Settlement => ({
    ...tokens(r),
    status: statusOf(r),
    ...(r.finishReason === "error" ? { deliveredFinal: true } : {}),
  });
  const usageOf = (r: PumpResult) =>
    out.usage(promptTokens, r.cachedTokens, r.completionTokens, life.costMicros(tokens(r)));
  const storeIfCacheable = (r: PumpResult) => {
    if (g.cache && (r.finishReason === "stop" || r.finishReason === "length") && !r.budgetExhausted) {
      c.executionCtx.waitUntil(
        responseCache.store(
          g.cache.key,
          { text, finishReason: r.finishReason, completionTokens: r.completionTokens },
          g.cache.ttl,
        ),
      );
    }
  };
  const logResult = (status: number, r: PumpResult) =>
    life.finish(status, { finish_reason: r.finishReason, ttft_ms: r.ttftMs, error: r.error });

  if (!p.stream) return nonStreaming();

  const sse = new SseChannel(() => life.clientGone());
  sse.send(out.chunk(meta, { role: "assistant", content: "" }));
  const unwatch = life.watchRevocation();
  c.executionCtx.waitUntil(
    (async () => {
      const r = await run((t, lp) => {
        const delta = tools ? deltaOf(tools.push(t)) : { content: t };
        // Held-back text (a possible call marker) sends nothing yet, unless its logprobs must go now.
        if (delta === null && !wantLogprobs) return true;
        return sse.send(
          out.chunk(meta, delta ?? { content: "" }, null, undefined, wantLogprobs ? (lp ?? []) : undefined),
        );
      });
      unwatch();
      life.settle(settlementOf(r));
      if (life.revoked) sse.send(keyRevoked().body()); // ended by the revocation, not the client: say why
      const u = usageOf(r);
      if (r.finishReason === "error") {
        sse.send(out.chunk(meta, { content: "" }, { finishReason: "error" }, u));
        sse.send(backendError().body());
      } else if (r.finishReason !== "cancelled") {
        let end = endingOf(r);
        if (tools) {
          const fin = tools.finish(end.finishReason);
          const delta = deltaOf(fin.events);
          if (delta) sse.send(out.chunk(meta, delta));
          end = { ...end, finishReason: fin.reason };
        }
        sse.send(out.chunk(meta, { content: "" }, end, u));
        if (p.includeUsage) sse.send(out.usageChunk(meta, u));
        sse.done();
        storeIfCacheable(r);
      }
      sse.close();
      logResult(r.finishReason === "cancelled" ? CLIENT_CLOSED : 200, r);
    })(),
  );
  return Promise.resolve(new Response(sse.readable, { status: 200, headers: { ...SSE_HEADERS, ...headers } }));

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
    const events: ToolEvent[] = [];
    const answerOf = (r: PumpResult) =>
      tools ? toolAnswer(tools, events, endingOf(r)) : { text, end: endingOf(r), calls: undefined };
    const work = run((t) => {
      if (tools) events.push(...tools.push(t));
      return true;
    }, keepAlive).then((r) => {
      clearTimeout(timer);
      if (phase === "waiting") {
        phase = "answered";
        // Nothing was delivered when the backend failed: nothing is charged.
        if (r.finishReason === "error") life.settleEmpty("error");
        else life.settle(settlementOf(r));
        answered(r);
        return;
      }
      // Committed: the body carries whatever was generated, a failure included, and is billed as such.
      life.settle(settlementOf(r));
      if (r.finishReason !== "cancelled") {
        const a = answerOf(r);
        body.write(
          JSON.stringify(out.completion(meta, a.text, a.end, usageOf(r), wantLogprobs ? logprobs : undefined, a.calls)),
        );
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
    const a = answerOf(r);
    return c.json(
      out.completion(meta, a.text, a.end, usageOf(r), wantLogprobs ? logprobs : undefined, a.calls),
      200,
      headers,
    );
  }
}

/** Replays a cached completion; bills the prompt as cached tokens only (response-cache.ts). */
export async function replayHit(
  c: Context<AppEnv>,
  life: Lifecycle,
  pricing: Pricing,
  p: ChatParams,
  meta: out.Meta,
  promptTokens: number,
  hit: responseCache.CachedCompletion,
): Promise<Response> {
  const admitted = await life.admit(pricing, promptTokens, 0);
  // The usage reported is what is billed: the prompt, as cached tokens; nothing was generated.
  const billed = { promptTokens, cachedTokens: promptTokens, completionTokens: 0 };
  life.settle({ ...billed, status: "cache_hit" });
  const u = out.usage(promptTokens, promptTokens, 0, life.costMicros(billed));
  const headers = { ...admitted.headers, "x-cache": "HIT" };
  life.finish(200, {
    finish_reason: hit.finishReason,
    completion_tokens: hit.completionTokens,
    ttft_ms: Date.now() - life.startedAt,
  });
  // With tools the cached text is parsed again, as a buffered answer (fresh call ids).
  const tools = toolStream(p.tools, false);
  const a = tools
    ? toolAnswer(tools, tools.push(hit.text), { finishReason: hit.finishReason })
    : { text: hit.text, end: { finishReason: hit.finishReason } as out.Ending, calls: undefined };
  if (!p.stream) return c.json(out.completion(meta, a.text, a.end, u, undefined, a.calls), 200, headers);
  const delta = wholeDelta(a.text, a.calls);
  const frames = [
    out.chunk(meta, { role: "assistant", content: "" }),
    ...(delta ? [out.chunk(meta, delta)] : []),
    out.chunk(meta, { content: "" }, a.end, u),
    ...(p.includeUsage ? [out.usageChunk(meta, u)] : []),
  ];
  return new Response(frames.map(sseFrame).join("") + SSE_DONE, {
    status: 200,
    headers: { ...SSE_HEADERS, ...headers },
  });
}
