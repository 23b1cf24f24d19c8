/**
 * A completion as server-sent events (OpenAI/Mistral `chat.completion.chunk`s): a role chunk at once,
 * a chunk per piece of text (with its logprobs when asked), then the chunk with finish_reason, which
 * carries usage (and `budget_exhausted` when a refused budget slice ended it), the include_usage chunk
 * and `[DONE]`. A backend failure after the first token is a chunk with finish_reason "error" and the
 * usage so far, then `data: {"error": ...}` and no [DONE]; a revoked key's stream ends with its error
 * event. A client that left gets nothing more (the completion settles it `cancelled`).
 */
import type { Completion } from "../completion/chat";
import type { Usage } from "../completion/events";
import type { LogprobContent, ToolCallPiece, Usage as UsageBody } from "../../contract/api-chat";
import { CLIENT_CLOSED } from "../completion/metered";
import * as out from "./chat-response";
import { SSE_HEADERS, SseChannel } from "./sse";

export interface SseOptions {
  /** OpenAI's stream_options.include_usage: a final chunk with no choices repeats the usage. */
  includeUsage: boolean;
  /** The request asked for logprobs: every content chunk carries a logprobs field. */
  logprobs: boolean;
  /** The client went away (the body was cancelled, or stopped being read). */
  onGone: () => void;
  waitUntil: (promise: Promise<unknown>) => void;
}

export const toUsage = (u: Usage): UsageBody =>
  out.usage(u.promptTokens, u.cachedTokens, u.completionTokens, u.costMicros);

export function renderSse(completion: Completion, o: SseOptions): Response {
  const sse = new SseChannel(o.onGone);
  const send = (data: unknown) => {
    if (!sse.send(data)) o.onGone();
  };
  send(out.chunk(completion, { role: "assistant", content: "" }));
  o.waitUntil(
    (async () => {
      let pending: LogprobContent[] | undefined;
      let usage: UsageBody | undefined;
      let status = 200;
      for await (const ev of completion.events) {
        switch (ev.type) {
          case "logprobs":
            pending = ev.content;
            break;
          case "delta":
            send(
              out.chunk(completion, { content: ev.text }, null, undefined, o.logprobs ? (pending ?? []) : undefined),
            );
            pending = undefined;
            break;
          case "tool_call_delta": {
            const first = ev.id !== undefined || ev.name !== undefined;
            const piece: ToolCallPiece = {
              index: ev.index,
              ...(first ? { id: ev.id, type: "function" as const } : {}),
              // Later pieces repeat name as "": Mistral's SDK requires a name string in every piece;
              // OpenAI's SDK skips an empty one and LangChain appends it.
              function: { name: ev.name ?? "", arguments: ev.argumentsFragment ?? "" },
            };
            send(out.chunk(completion, { content: "", tool_calls: [piece] }));
            break;
          }
          case "usage":
            usage = toUsage(ev);
            break;
          case "finish":
            if (ev.reason === "cancelled") {
              status = CLIENT_CLOSED;
              break;
            }
            send(
              out.chunk(
                completion,
                { content: "" },
                { finishReason: ev.reason, budgetExhausted: ev.budgetExhausted },
                usage,
              ),
            );
            if (o.includeUsage && usage) send(out.usageChunk(completion, usage));
            sse.done();
            break;
          case "error":
            if (ev.cause === "backend") send(out.chunk(completion, { content: "" }, { finishReason: "error" }, usage));
            else status = CLIENT_CLOSED; // ended by the revocation, like a client that left: say why
            send(ev.error.body());
            break;
        }
      }
      sse.close();
      completion.logResult(status);
    })(),
  );
  return new Response(sse.readable, { status: 200, headers: { ...SSE_HEADERS, ...completion.headers } });
}
