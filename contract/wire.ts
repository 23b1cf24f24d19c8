/**
 * The one wire contract between the edge worker and the GPU backend.
 * Both sides import this module: the backend validates requests with these schemas,
 * the worker builds requests from the inferred types and parses the NDJSON event stream.
 * Pure TypeScript + zod: it must bundle into a Worker and run in Node.
 */
import { z } from "zod";

/**
 * 3: `format_trigger` (tool calls under tool_choice "auto") and `priority` (batch lines). A version-2
 * backend would drop them and constrain from the first token, or serve batch work ahead of interactive
 * work, so it must refuse this edge instead. (2 added response_format and logprobs.)
 */
export const WIRE_VERSION = 3;

/**
 * The edge names the contract version it speaks on every request (`x-moe-wire-version: 2`). A backend
 * refuses any other version with a 400 whose code is WIRE_VERSION_UNSUPPORTED, before any work, and the
 * edge reports that as a 502. A request without the header (curl, a test) is taken as this version.
 */
export const WIRE_VERSION_HEADER = "x-moe-wire-version";
export const WIRE_VERSION_UNSUPPORTED = "wire_version_unsupported";

/** `Authorization: Bearer <BACKEND_TOKEN>` is required whenever the backend has a token configured. */
export const BACKEND_AUTH_HEADER = "authorization";

const tokenId = z.number().int().nonnegative();

/**
 * Request ids travel in headers, log lines and the usage journal, so they are restricted to a safe
 * alphabet (the edge's `req_<hex>` fits). Anything else is a 400 before work starts.
 */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const RequestIdSchema = z.string().regex(REQUEST_ID_PATTERN, "must match [A-Za-z0-9_-]{1,128}");

/**
 * Who a request is billed to, echoed back in the backend's usage records (contract/usage.ts) so the
 * ledger can recover a request whose worker died. Optional: the backend serves requests without them.
 */
const billingFields = {
  key_id: z.string().min(1).max(128).optional(),
  /** The edge's public tier name (prices a recovered record). */
  tier: z.string().min(1).max(64).optional(),
};

/**
 * Structured output: the backend masks every token the format refuses, so the output is always a prefix
 * of a valid document, and a whole one when it ends with finish_reason "stop". `schema` is JSON Schema
 * (the supported subset is in the README); an unsupported keyword is a 400 naming it.
 */
export const ResponseFormatSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("json_object") }),
  z.object({ type: z.literal("json_schema"), schema: z.unknown() }),
]);
export type ResponseFormat = z.output<typeof ResponseFormatSchema>;

/** Most alternatives per token (OpenAI's limit). */
export const MAX_TOP_LOGPROBS = 20;

export const GenerateRequestSchema = z.object({
  model: z.string().min(1),
  input_ids: z.array(tokenId).min(1),
  max_tokens: z.number().int().positive(),
  temperature: z.number().min(0).max(2).default(0),
  top_p: z.number().gt(0).max(1).default(1),
  /** 0 disables top-k. */
  top_k: z.number().int().nonnegative().default(0),
  seed: z.number().int().nonnegative().optional(),
  stop_token_ids: z.array(tokenId).default([]),
  /** Mixed into the first prefix-cache block hash so tenants never share entries. */
  cache_salt: z.string().max(256).default(""),
  request_id: RequestIdSchema,
  response_format: ResponseFormatSchema.optional(),
  /** Adds `logprobs` to every tokens event. */
  logprobs: z.boolean().optional(),
  /** Alternatives per token in those logprobs (needs logprobs: true). */
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).optional(),
  /**
   * With response_format: decode freely until the output contains this text (a tool-call marker), then
   * constrain what follows it by response_format. Without it the format applies from the first token.
   */
  format_trigger: z.string().min(1).max(64).optional(),
  /** "batch" work only fills capacity that interactive requests leave idle; absent means "interactive". */
  priority: z.enum(["interactive", "batch"]).optional(),
  ...billingFields,
});
export type GenerateRequest = z.input<typeof GenerateRequestSchema>;
export type GenerateParams = z.output<typeof GenerateRequestSchema>;

export type FinishReason = "stop" | "length" | "model_length" | "cancelled" | "error";

export interface BackendUsage {
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
}

export interface BackendTimings {
  queue_ms: number;
  prefill_ms: number;
  decode_ms: number;
}

/**
 * A sampled token's log-probability and the best alternatives (`top`, most likely first, ties -> lower id),
 * from the log-softmax of the logits at temperature 1 after any response_format mask: the model's own
 * distribution over the tokens it was allowed to emit (OpenAI's convention; temperature does not change it).
 */
export interface TokenLogprob {
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

/**
 * Response body of POST /v1/generate: NDJSON (`application/x-ndjson`), one event per line.
 * `tokens` events carry one or more newly sampled ids; exactly one `done` event ends the stream.
 */
export type GenerateEvent =
  /** `logprobs` (when requested) has one entry per id, in order. */
  | { type: "tokens"; ids: number[]; logprobs?: TokenLogprob[] }
  | {
      type: "done";
      finish_reason: FinishReason;
      usage: BackendUsage;
      timings: BackendTimings;
      /** Present when finish_reason is "error"; never contains internals. */
      error?: string;
    };

/**
 * POST /v1/cancel: stop an in-flight generation by its request_id. The generate stream stays open and
 * still ends with its `done` event (finish_reason "cancelled", usage = tokens generated until it stopped),
 * so the caller can drain it and bill exactly. `cancelled` is false for unknown or already finished ids.
 */
export const CancelRequestSchema = z.object({ request_id: RequestIdSchema });
export type CancelRequest = z.input<typeof CancelRequestSchema>;
export interface CancelResponse {
  cancelled: boolean;
}

export const EmbedRequestSchema = z.object({
  model: z.string().min(1),
  inputs: z.array(z.array(tokenId).min(1)).min(1).max(256),
  request_id: RequestIdSchema.optional(),
  ...billingFields,
});
export type EmbedRequest = z.input<typeof EmbedRequestSchema>;

export interface EmbedResponse {
  model: string;
  /** One L2-normalised vector per input (mean of the final hidden states). */
  data: number[][];
  usage: { prompt_tokens: number };
}

/**
 * POST /v1/embed answered 409 (cancelled through /v1/cancel or a disconnect) or 500 (a forward failed)
 * after some inputs were computed: `usage.prompt_tokens` is what the backend computed, billable.
 */
export interface EmbedStoppedBody extends BackendErrorBody {
  usage: { prompt_tokens: number };
}

export interface BackendModelInfo {
  id: string;
  context_length: number;
  vocab_size: number;
  hidden_size: number;
  architecture: string;
}

export interface ModelsResponse {
  object: "list";
  data: BackendModelInfo[];
}

/** Error body for every non-2xx backend answer: the OpenAI shape (`type` and `param` were added later, hence optional). */
export interface BackendErrorBody {
  error: { message: string; code: string; type?: string; param?: string | null };
}

export const NDJSON_CONTENT_TYPE = "application/x-ndjson";

/** Parses one NDJSON line from a generate stream. Throws on malformed input. */
export function parseGenerateEvent(line: string): GenerateEvent {
  const ev = JSON.parse(line) as GenerateEvent;
  if (ev.type !== "tokens" && ev.type !== "done") throw new Error("unknown generate event");
  return ev;
}
