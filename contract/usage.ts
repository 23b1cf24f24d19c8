/**
 * The backend's usage witness: one final record per request the backend finished, cancelled
 * or failed, journaled on the backend before the stream's `done` line, then delivered to the worker.
 *
 * Delivery protocol (README "Usage witness"):
 *   POST <usage-url>   Authorization: Bearer <USAGE_TOKEN>   body: UsageBatch {records: [UsageRecord, …]}
 *   200 UsageAck {acked: [id, …]}: the ids now durably merged on the worker. Anything else, or an id left
 *   out, is retried with exponential backoff and jitter, forever, and replayed after a backend restart.
 * Delivery is at least once: the same record can arrive twice, late, or out of order, so the receiver
 * merges by request_id idempotently and acks ids it has already merged.
 * Pure TypeScript + zod: imported by the worker (validation) and the backend (journal replay).
 */
import { z } from "zod";
import { RequestIdSchema } from "./wire";

const count = z.number().int().nonnegative();
const epochMs = z.number().int().nonnegative();

export const UsageRecordSchema = z.object({
  /** Unique per record (not per request): the unit of acknowledgement. */
  id: z.string().min(1).max(64),
  request_id: RequestIdSchema,
  kind: z.enum(["generate", "embed"]),
  /** As the worker sent them on the request (contract/wire.ts); null when absent. */
  key_id: z.string().max(128).nullable(),
  tier: z.string().max(64).nullable(),
  /** The backend's model name (the tier's backend_model). */
  model: z.string().min(1).max(128),
  prompt_tokens: count,
  cached_tokens: count,
  /** Always 0 for embeddings. */
  completion_tokens: count,
  /** generate: the done event's finish_reason; embed: "stop" (all inputs), "cancelled" or "error". */
  finish_reason: z.enum(["stop", "length", "model_length", "cancelled", "error"]),
  /** ms since epoch: when the backend accepted the request, and when it stopped computing for it. */
  started_at: epochMs,
  ended_at: epochMs,
  /** Which backend wrote it (hostname:port), for operators. */
  backend: z.string().max(200),
});
export type UsageRecord = z.infer<typeof UsageRecordSchema>;

/** A batch is bounded so one POST stays small for the receiving Worker. */
export const MAX_USAGE_BATCH = 500;

export const UsageBatchSchema = z.object({ records: z.array(UsageRecordSchema).min(1).max(MAX_USAGE_BATCH) });
export type UsageBatch = z.infer<typeof UsageBatchSchema>;

export const UsageAckSchema = z.object({ acked: z.array(z.string()) });
export type UsageAck = z.infer<typeof UsageAckSchema>;

/** The worker's route for deliveries (its own token, USAGE_TOKEN; 404 when unset). */
export const USAGE_PATH = "/internal/usage";

/**
 * POST /v1/usage/status on the backend (BACKEND_TOKEN): what it knows of some request ids, so a worker
 * holding a reservation with no settle can tell "still running", "finished (here is the record)" and
 * "never seen". `since` bounds the last answer: every request the backend accepted at or after `since`
 * (ms epoch) is running or finished; "unknown" for a request sent before `since` proves nothing (the
 * backend restarted, or forgot old records).
 */
export const UsageStatusRequestSchema = z.object({ request_ids: z.array(RequestIdSchema).min(1).max(100) });
export type UsageStatusRequest = z.infer<typeof UsageStatusRequestSchema>;

export type RequestState = { state: "running" } | { state: "finished"; record: UsageRecord } | { state: "unknown" };

export interface UsageStatusResponse {
  since: number;
  requests: Record<string, RequestState>;
}
