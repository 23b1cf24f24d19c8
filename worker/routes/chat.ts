/**
 * POST /v1/chat/completions: parse -> prepare (tier, chat template, context check) -> the completion
 * (completion/chat.ts: response cache, admit, dispatch, pump, settle once) -> a renderer (SSE or JSON).
 *
 * Decisions (see docs/api.md):
 *  - temperature defaults to 0.7 (Mistral); max_tokens defaults to, and is clamped to, the context left.
 *  - finish_reason: "stop" | "length" (the backend's "model_length", or the budget refusing the next
 *    slice, which also sets `budget_exhausted: true`) | "error".
 *  - A client that leaves is a cancellation in every mode: the replica is cancelled (POST /v1/cancel),
 *    drained to its final `done`, and exactly what it generated is billed with status `cancelled`; one
 *    that leaves before any replica admitted the request costs nothing.
 */
import { readJson } from "../api/body";
import { prepareChat } from "../api/chat-prepare";
import { parseChatBody } from "../api/chat-request";
import { renderJson } from "../api/render-json";
import { renderSse } from "../api/render-sse";
import { requestScope } from "../api/scope";
import { startCompletion } from "../completion/chat";
import { CLIENT_CLOSED, MeteredRequest } from "../completion/metered";
import * as responseCache from "../completion/response-cache";
import { factory } from "../factory";
import { ClientGone } from "../serving/dispatch";

export const chatRoutes = factory.createApp();

chatRoutes.post("/chat/completions", async (c) => {
  // The client's one cancellation signal: request.signal, or the response body cancelled (onGone).
  const gone = new AbortController();
  const req = new MeteredRequest(requestScope(c, "chat", gone.signal));
  try {
    const p = parseChatBody(await readJson(c.req.raw));
    req.setModel(p.model);
    req.log.stream = p.stream;
    const { tier, promptIds, maxTokens } = prepareChat(c.env, req.account, p);
    const cacheTtl = responseCache.requestedTtl(c.req.header(responseCache.CACHE_TTL_HEADER));
    if (c.env.LOG_PROMPTS === "1") req.log.prompt = p.messages;

    // A batch line (worker/batch/) reaches the backend with priority "batch".
    const line = c.get("batch");
    const source = line ? { kind: "batch" as const, batchId: line.batchId, line: line.line } : undefined;
    const completion = await startCompletion({ request: req, tier, params: p, promptIds, maxTokens, cacheTtl, source });
    const render = {
      logprobs: p.topLogprobs !== null,
      onGone: () => gone.abort(),
      waitUntil: req.waitUntil,
    };
    return p.stream
      ? renderSse(completion, { ...render, includeUsage: p.includeUsage })
      : await renderJson(completion, render);
  } catch (err) {
    if (err instanceof ClientGone) {
      req.finish(CLIENT_CLOSED, { finish_reason: "cancelled" });
      return new Response(null, { status: CLIENT_CLOSED });
    }
    throw req.fail(err);
  }
});
