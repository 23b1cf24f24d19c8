/**
 * One streamed chat completion through the real API (POST /v1/chat/completions, SSE), as any client
 * would send it, plus the ledger lookup that gives the reply's exact cost afterwards.
 */
import { ApiFailure, type Api } from "../api";
import { sseData } from "../sse";
import type { ChatChunk, ToolCall, ToolCallPiece, Usage, UsageRequest, UsageRequests } from "../types";
import type { ToolDef } from "./playground-tools";

export type ChatMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: ToolCall[] }
  | { role: "tool"; content: string; tool_call_id: string };

export interface ChatParams {
  model: string;
  messages: ChatMessage[];
  temperature: number;
  top_p: number;
  max_tokens?: number;
  seed?: number;
  tools?: ToolDef[];
  tool_choice?: string;
}

export interface ChatOutcome {
  requestId: string | null;
  usage: Usage | null;
  finishReason: string | null;
  ttftMs: number | null;
  /** The user pressed Stop: the connection was closed mid-stream. */
  stopped: boolean;
  /** The stream started and then failed (an `error` event, or the connection broke). */
  error: unknown;
}

/** The request body the playground sends; the code snippets show the same one. */
export const chatBody = (p: ChatParams) => ({ ...p, stream: true, stream_options: { include_usage: true } });

export async function streamChat(
  api: Api,
  p: ChatParams,
  signal: AbortSignal,
  onText: (t: string) => void,
  onOpen: (requestId: string | null) => void,
  onToolCall: (piece: ToolCallPiece) => void = () => {},
): Promise<ChatOutcome> {
  const t0 = performance.now();
  const res = await api.raw("/v1/chat/completions", { method: "POST", body: JSON.stringify(chatBody(p)), signal });
  const out: ChatOutcome = {
    requestId: res.headers.get("x-request-id"),
    usage: null,
    finishReason: null,
    ttftMs: null,
    stopped: false,
    error: null,
  };
  onOpen(out.requestId);
  if (!res.body) return { ...out, error: new Error("The response had no body.") };
  try {
    for await (const data of sseData(res.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data) as ChatChunk;
      if (chunk.error) {
        out.error = new ApiFailure(
          500,
          chunk.error.message ?? "The stream failed.",
          chunk.error.type ?? null,
          chunk.error.code ?? null,
        );
        break;
      }
      const choice = chunk.choices?.[0];
      const text = choice?.delta?.content;
      if (text) {
        out.ttftMs ??= Math.round(performance.now() - t0);
        onText(text);
      }
      for (const piece of choice?.delta?.tool_calls ?? []) {
        out.ttftMs ??= Math.round(performance.now() - t0);
        onToolCall(piece);
      }
      if (choice?.finish_reason) out.finishReason = choice.finish_reason;
      if (chunk.usage) out.usage = chunk.usage;
    }
  } catch (err) {
    if (signal.aborted) out.stopped = true;
    else out.error = err;
  }
  return out;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The ledger record of one request. It is written just after the response ends (and after a
 * cancelled stream has drained at the backend), so poll briefly with backoff.
 */
export async function ledgerRecord(api: Api, requestId: string): Promise<UsageRequest | null> {
  // ~45 s in all: a stopped stream is billed only once the backend has confirmed where it stopped.
  for (const delay of [100, 200, 400, 800, 1000, 1500, 2000, 3000, 4000, 4000, 4000, 4000, 5000, 5000, 5000]) {
    const list = await api.get<UsageRequests>(`/v1/usage/requests?request_id=${encodeURIComponent(requestId)}&limit=1`);
    if (list.data[0]) return list.data[0];
    await wait(delay);
  }
  return null;
}
