/**
 * Response bodies of the public API as zod schemas, declared once for the OpenAPI document
 * (api/openapi.ts). Request bodies are the schemas that validate them, exported by their routes.
 *
 * The handlers build their bodies with plain functions and types; the `Checks` at the end make tsc
 * fail when one of those types stops matching its schema, and test/node/openapi-responses.test.ts
 * validates real responses from the local stack against the served document.
 */
import { z } from "zod";
import type { KeyRow } from "../billing/keys";
import type { UsageRequestRow, UsageRow } from "../billing/ledger";
import type { ReplayResult } from "../billing/dead-letters";
import type { ErrorBody } from "../errors";
import type { chunk, completion, Usage as UsageType, usageChunk } from "./chat-response";

export * from "./batch-schemas";

const count = z.number().int().min(0);
const epochMs = z.number().int().min(0).describe("Unix time in milliseconds.");

export const ErrorResponse = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.enum([
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "insufficient_quota",
        "api_error",
        "service_unavailable",
        "not_supported",
      ]),
      param: z.string().nullable().describe("The request field at fault, e.g. `messages[0].role`."),
      code: z.string().nullable(),
    }),
  })
  .describe("Every error, in the OpenAI/Mistral shape.");

export const Usage = z.object({
  prompt_tokens: count,
  completion_tokens: count,
  total_tokens: count,
  prompt_tokens_details: z.object({ cached_tokens: count }),
  cost_micros: count.describe("What this request was charged: its exact cost rounded up to whole micro-euros."),
});

const TopLogprob = z.object({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int()) });
const Logprobs = z
  .object({ content: z.array(TopLogprob.extend({ top_logprobs: z.array(TopLogprob) })) })
  .describe("Present only when the request set `logprobs: true`.");
const FinishReason = z.enum(["stop", "length", "tool_calls", "error"]);
const ToolCall = z.object({
  id: z.string().describe("9 alphanumeric characters: a valid tool_call_id for OpenAI's and Mistral's APIs alike."),
  type: z.literal("function"),
  function: z.object({
    name: z.string(),
    arguments: z.string().describe("JSON text of the arguments; it validates against the function's parameters."),
  }),
});
const ToolCallPiece = z
  .object({
    index: z.number().int(),
    id: z.string().optional(),
    type: z.literal("function").optional(),
    function: z.object({ name: z.string().optional(), arguments: z.string() }),
  })
  .describe(
    'The first piece of a call has id, type and function.name (arguments ""); later pieces add function.arguments text (name "").',
  );
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

export const ModelList = z.object({ object: z.literal("list"), data: z.array(Model) });

export const KeyStatus = z.object({
  object: z.literal("key"),
  id: z.string(),
  name: z.string(),
  tiers: z.array(z.string()),
  rpm: z.number().int(),
  tpm: z.number().int(),
  monthly_budget_micros: count,
  spent_micros: count,
  reserved_micros: count,
  remaining_micros: count,
  budget_state: z
    .enum(["ok", "low", "spent"])
    .describe(
      "`spent`: every metered request is refused until the period ends or the budget is raised; `low`: what remains no longer covers a typical first reservation.",
    ),
  period_start: z.iso.datetime().describe("Start of the budget period (a UTC calendar month)."),
  period_end: z.iso.datetime(),
});

export const UsageDays = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      date: z.string(),
      tier: z.string(),
      requests: count,
      prompt_tokens: count,
      cached_tokens: count,
      completion_tokens: count,
      cost_micros: count,
      batch_requests: count.describe("How many of `requests` were batch lines (billed at the batch price)."),
      batch_cost_micros: count.describe("The batch lines' part of the cost; interactive spend is the rest."),
    }),
  ),
});

const UsageRequest = z.object({
  request_id: z.string(),
  key_id: z.string(),
  tier: z.string(),
  status: z.enum(["ok", "cancelled", "error", "rejected", "cache_hit", "recovered"]),
  prompt_tokens: count,
  cached_tokens: count,
  completion_tokens: count,
  cost_micros: count,
  cost_units: z.string().describe("The exact cost in units of 1e-12 EUR, as a decimal string."),
  started_at: epochMs,
  ended_at: epochMs,
});

export const UsageRequests = z.object({ object: z.literal("list"), data: z.array(UsageRequest) });

export const Tokenized = z.object({ count, max_model_len: z.number().int(), tokens: z.array(z.number().int()) });
export const Detokenized = z.object({ prompt: z.string() });
export const Health = z.object({ status: z.literal("ok") });

const apiKeyFields = {
  object: z.literal("api_key"),
  id: z.string(),
  name: z.string(),
  tiers: z.array(z.string()),
  rpm: z.number().int(),
  tpm: z.number().int(),
  monthly_budget_micros: count,
  created_at: epochMs,
  updated_at: epochMs,
  revoked_at: epochMs.nullable(),
};
export const ApiKey = z.object(apiKeyFields);
export const CreatedApiKey = z.object({ ...apiKeyFields, key: z.string().describe("The secret; shown only here.") });
export const DeletedApiKey = z.object({ ...apiKeyFields, deleted: z.literal(true) });
export const ApiKeyList = z.object({ object: z.literal("list"), data: z.array(ApiKey) });

export const AdminUsageDays = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      key_id: z.string(),
      date: z.string(),
      tier: z.string(),
      requests: count,
      rejected: count,
      prompt_tokens: count,
      cached_tokens: count,
      completion_tokens: count,
      cost_micros: count,
      cost_units: z.string(),
      batch_requests: count,
      batch_cost_micros: count,
      batch_cost_units: z.string(),
    }),
  ),
});

export const DeadLetters = z.object({ object: z.literal("dead_letters"), count });
export const RejectedUsageReports = z.object({
  object: z.literal("rejected_usage_reports"),
  count,
  data: z.array(
    z.object({
      report_id: z.string(),
      request_id: z.string(),
      key_id: z.string().nullable(),
      tier: z.string().nullable(),
      backend: z.string(),
      prompt_tokens: count,
      completion_tokens: count,
      reason: z.string(),
      received_at: count,
    }),
  ),
});
export const DeadLetterReplay = z.object({
  object: z.literal("dead_letter_replay"),
  replayed: count,
  failed: count,
  remaining: count,
});

export const ReplicaList = z
  .object({
    data: z.array(
      z.object({
        id: z.string(),
        url: z.string(),
        models: z.array(z.string()),
        tiers: z.array(z.string()),
        state: z.enum(["ready", "draining"]),
        in_flight: count,
        queue_depth: count,
        kv_free_blocks: count,
        slots: count,
        served: count.describe("Requests completed since the replica registered."),
        last_seen: z.iso.datetime(),
        version: z.string(),
      }),
    ),
  })
  .describe("The registry's live replicas; an empty list without a registry.");

/** `T extends U`: what the handlers build is what the document says. Compile-time only. */
export type Fits<T extends U, U> = [T, U];
export type Checks = [
  Fits<ErrorBody, z.output<typeof ErrorResponse>>,
  Fits<UsageType, z.output<typeof Usage>>,
  Fits<ReturnType<typeof completion>, z.output<typeof ChatCompletion>>,
  Fits<ReturnType<typeof chunk> | ReturnType<typeof usageChunk>, z.output<typeof ChatCompletionChunk>>,
  Fits<UsageRequestRow, z.output<typeof UsageRequest>>,
  Fits<UsageRow, z.output<typeof AdminUsageDays>["data"][number]>,
  Fits<{ object: "api_key" } & KeyRow, z.output<typeof ApiKey>>,
  Fits<ReplayResult & { object: "dead_letter_replay" }, z.output<typeof DeadLetterReplay>>,
];
