/**
 * Response bodies of chat completions, embeddings, models and tokenization (contract/api-common.ts says
 * how these schemas are used). The worker's builders (worker/api/chat-response.ts) return these types.
 */
import { z } from "zod";
import { count, list } from "./api-common";

export const Usage = z.object({
  prompt_tokens: count,
  completion_tokens: count,
  total_tokens: count,
  prompt_tokens_details: z.object({ cached_tokens: count }),
  cost_micros: count.describe("What this request was charged: its exact cost rounded up to whole micro-euros."),
});
export type Usage = z.output<typeof Usage>;

export const TopLogprob = z.object({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int()) });
export type TopLogprob = z.output<typeof TopLogprob>;
/** One content token's logprob and its alternatives (OpenAI's choices[].logprobs.content[]). */
export const LogprobContent = TopLogprob.extend({ top_logprobs: z.array(TopLogprob) });
export type LogprobContent = z.output<typeof LogprobContent>;
const Logprobs = z
  .object({ content: z.array(LogprobContent) })
  .describe("Present only when the request set `logprobs: true`.");

export const FinishReason = z.enum(["stop", "length", "tool_calls", "error"]);
export type FinishReason = z.output<typeof FinishReason>;

/** A whole tool call in a message (OpenAI's shape). */
export const ToolCall = z.object({
  id: z.string().describe("9 alphanumeric characters: a valid tool_call_id for OpenAI's and Mistral's APIs alike."),
  type: z.literal("function"),
  function: z.object({
    name: z.string(),
    arguments: z.string().describe("JSON text of the arguments; it validates against the function's parameters."),
  }),
});
export type ToolCall = z.output<typeof ToolCall>;

/** One piece of a tool call in a stream chunk. */
export const ToolCallPiece = z
  .object({
    index: z.number().int(),
    id: z.string().optional(),
    type: z.literal("function").optional(),
    function: z.object({ name: z.string().optional(), arguments: z.string() }),
  })
  .describe(
    'The first piece of a call has id, type and function.name (arguments ""); later pieces add function.arguments text (name "").',
  );
export type ToolCallPiece = z.output<typeof ToolCallPiece>;

const budgetExhausted = z
  .boolean()
  .optional()
  .describe("Present (true) when the key's budget ended the answer; finish_reason is then `length`.");

export const ChatCompletion = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({
        role: z.literal("assistant"),
        content: z.string().nullable().describe("With tool calls: the text before them, or null."),
        tool_calls: z.array(ToolCall).optional(),
      }),
      logprobs: Logprobs.optional(),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
  budget_exhausted: budgetExhausted,
});
export type ChatCompletion = z.output<typeof ChatCompletion>;

export const ChatCompletionChunk = z
  .object({
    id: z.string(),
    object: z.literal("chat.completion.chunk"),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        delta: z.object({
          role: z.literal("assistant").optional(),
          content: z.string(),
          tool_calls: z.array(ToolCallPiece).optional(),
        }),
        logprobs: Logprobs.optional(),
        finish_reason: FinishReason.nullable(),
      }),
    ),
    usage: Usage.optional(),
    budget_exhausted: budgetExhausted,
  })
  .describe(
    "One `data:` event of a stream. The last chunk with choices carries the finish reason and usage; with `stream_options.include_usage` a final chunk with no choices repeats the usage.",
  );
export type ChatCompletionChunk = z.output<typeof ChatCompletionChunk>;

export const Embeddings = z.object({
  id: z.string(),
  object: z.literal("list"),
  data: z.array(
    z.object({
      object: z.literal("embedding"),
      embedding: z
        .union([z.array(z.number()), z.string()])
        .describe("Floats, or with `encoding_format: base64` float32 little-endian in base64."),
      index: z.number().int(),
    }),
  ),
  model: z.string(),
  usage: z.object({ prompt_tokens: count, total_tokens: count, cost_micros: count }),
});
export type Embeddings = z.output<typeof Embeddings>;

export const Model = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
  type: z.literal("base"),
  capabilities: z.object({
    completion_chat: z.boolean(),
    function_calling: z.boolean(),
    completion_fim: z.boolean(),
    fine_tuning: z.boolean(),
    vision: z.boolean(),
  }),
  max_context_length: z.number().int(),
  context_length: z.number().int(),
});
export type Model = z.output<typeof Model>;

export const ModelList = list(Model);
export type ModelList = z.output<typeof ModelList>;

export const Tokenized = z.object({ count, max_model_len: z.number().int(), tokens: z.array(z.number().int()) });
export type Tokenized = z.output<typeof Tokenized>;
export const Detokenized = z.object({ prompt: z.string() });
export type Detokenized = z.output<typeof Detokenized>;
