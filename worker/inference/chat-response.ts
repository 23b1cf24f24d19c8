/** Response bodies of /v1/chat/completions in the OpenAI/Mistral shape. */

export type ClientFinishReason = "stop" | "length" | "error";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(promptTokens: number, cachedTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

export function completionId(): string {
  return `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
}

export interface Meta {
  id: string;
  created: number;
  model: string;
}

export function completion(meta: Meta, text: string, finishReason: ClientFinishReason, u: Usage) {
  return {
    id: meta.id,
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: "assistant" as const, content: text }, finish_reason: finishReason }],
    usage: u,
  };
}

export function chunk(meta: Meta, delta: { role?: "assistant"; content: string }, finishReason: ClientFinishReason | null = null, u?: Usage) {
  return {
    id: meta.id,
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...(u ? { usage: u } : {}),
  };
}

/** OpenAI's `stream_options.include_usage` final chunk. */
export function usageChunk(meta: Meta, u: Usage) {
  return { id: meta.id, object: "chat.completion.chunk" as const, created: meta.created, model: meta.model, choices: [], usage: u };
}
