/** Response bodies of /v1/chat/completions in the OpenAI/Mistral shape. */
import type { LogprobContent } from "./logprobs";
import type { ToolCallDeltaJson, ToolCallJson } from "./tool-response";

export type ClientFinishReason = "stop" | "length" | "error" | "tool_calls";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  /** What this request was charged: the exact cost rounded up to whole micro-euros. */
  cost_micros: number;
}

export function usage(promptTokens: number, cachedTokens: number, completionTokens: number, costMicros: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
    cost_micros: costMicros,
  };
}

/** How a generation ended, as the client sees it. */
export interface Ending {
  finishReason: ClientFinishReason;
  /** The budget refused the next slice (finishReason is then "length"). */
  budgetExhausted?: boolean;
}

export function completionId(): string {
  return `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
}

export interface Meta {
  id: string;
  created: number;
  model: string;
}

/** OpenAI's choices[].logprobs; absent unless the request asked for logprobs (Mistral's shape has none). */
const logprobsField = (lp: LogprobContent[] | undefined) => (lp ? { logprobs: { content: lp } } : {});

/** With `toolCalls` (non-empty), content is the text before the calls, or null when there is none. */
export function completion(
  meta: Meta,
  text: string,
  end: Ending,
  u: Usage,
  lp?: LogprobContent[],
  toolCalls?: ToolCallJson[],
) {
  const calls = toolCalls && toolCalls.length > 0 ? toolCalls : null;
  return {
    id: meta.id,
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: calls
          ? { role: "assistant" as const, content: text.trim() === "" ? null : text, tool_calls: calls }
          : { role: "assistant" as const, content: text },
        ...logprobsField(lp),
        finish_reason: end.finishReason,
      },
    ],
    usage: u,
    ...(end.budgetExhausted ? { budget_exhausted: true } : {}),
  };
}

export function chunk(
  meta: Meta,
  delta: { role?: "assistant"; content?: string; tool_calls?: ToolCallDeltaJson[] },
  end: Ending | null = null,
  u?: Usage,
  lp?: LogprobContent[],
) {
  return {
    id: meta.id,
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta, ...logprobsField(lp), finish_reason: end?.finishReason ?? null }],
    ...(u ? { usage: u } : {}),
    ...(end?.budgetExhausted ? { budget_exhausted: true } : {}),
  };
}

/** OpenAI's `stream_options.include_usage` final chunk. */
export function usageChunk(meta: Meta, u: Usage) {
  return {
    id: meta.id,
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    choices: [],
    usage: u,
  };
}
