/**
 * Response bodies of /v1/chat/completions in the OpenAI/Mistral shape. Their types are the schemas'
 * in contract/api-chat.ts (`satisfies` keeps each builder's literal type and checks it against them).
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  FinishReason,
  LogprobContent,
  ToolCall,
  ToolCallPiece,
  Usage,
} from "../../contract/api-chat";

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
  finishReason: FinishReason;
  /** The budget refused the next slice (finishReason is then "length"). */
  budgetExhausted?: boolean;
}

export interface Meta {
  id: string;
  created: number;
  model: string;
}

/** OpenAI's choices[].logprobs; absent unless the request asked for logprobs (Mistral's shape has none). */
const logprobsField = (lp: LogprobContent[] | undefined) => (lp ? { logprobs: { content: lp } } : {});

export function completion(
  meta: Meta,
  text: string,
  end: Ending,
  u: Usage,
  lp?: LogprobContent[],
  toolCalls: ToolCall[] = [],
) {
  return {
    id: meta.id,
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        // With calls, content is the text before them, or null when there is none (OpenAI's shape).
        message: toolCalls.length
          ? { role: "assistant" as const, content: text.trim() === "" ? null : text, tool_calls: toolCalls }
          : { role: "assistant" as const, content: text },
        ...logprobsField(lp),
        finish_reason: end.finishReason,
      },
    ],
    usage: u,
    ...(end.budgetExhausted ? { budget_exhausted: true } : {}),
  } satisfies ChatCompletion;
}

export function chunk(
  meta: Meta,
  delta: { role?: "assistant"; content: string; tool_calls?: ToolCallPiece[] },
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
  } satisfies ChatCompletionChunk;
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
  } satisfies ChatCompletionChunk;
}
