/**
 * Response bodies of a key's own account (GET /v1/key, /v1/usage, /v1/usage/requests) and of the admin
 * API (keys, usage, dead letters, rejected reports, replicas). contract/api-common.ts says how these
 * schemas are used; the worker's billing modules return these types straight from D1.
 */
import { z } from "zod";
import { count, epochMs, list } from "./api-common";
import { ReplicaStateSchema } from "./registry";

/** A budget's state: billing/budget.ts decides it, with the same rule as the refusals. */
export const BudgetState = z
  .enum(["ok", "low", "spent"])
  .describe(
    "`spent`: every metered request is refused until the period ends or the budget is raised; `low`: what remains no longer covers a typical first reservation.",
  );
export type BudgetState = z.output<typeof BudgetState>;

/** What a key is allowed: shared by its status (GET /v1/key) and its admin record. */
const keyLimitFields = {
  id: z.string(),
  name: z.string(),
  tiers: z.array(z.string()),
  rpm: z.number().int(),
  tpm: z.number().int(),
  monthly_budget_micros: count,
};

export const KeyStatus = z.object({
  object: z.literal("key"),
  ...keyLimitFields,
  spent_micros: count,
  reserved_micros: count,
  remaining_micros: count,
  budget_state: BudgetState,
  period_start: z.iso.datetime().describe("Start of the budget period (a UTC calendar month)."),
  period_end: z.iso.datetime(),
});
export type KeyStatus = z.output<typeof KeyStatus>;

/** One day of a key's usage on one tier, as the key itself sees it. */
export const UsageDay = z.object({
  date: z.string(),
  tier: z.string(),
  requests: count,
  prompt_tokens: count,
  cached_tokens: count,
  completion_tokens: count,
  cost_micros: count,
  batch_requests: count.describe("How many of `requests` were batch lines (billed at the batch price)."),
  batch_cost_micros: count.describe("The batch lines' part of the cost; interactive spend is the rest."),
});
export type UsageDay = z.output<typeof UsageDay>;
export const UsageDays = list(UsageDay);
export type UsageDays = z.output<typeof UsageDays>;

/** How a ledger record's request ended. `recovered`: billed from the backend's usage report alone. */
export const UsageStatus = z.enum(["ok", "cancelled", "error", "rejected", "cache_hit", "recovered"]);
export type UsageStatus = z.output<typeof UsageStatus>;

/** One ledger record (GET /v1/usage/requests and /v1/admin/usage/requests). */
export const UsageRequest = z.object({
  request_id: z.string(),
  key_id: z.string(),
  tier: z.string(),
  status: UsageStatus,
  prompt_tokens: count,
  cached_tokens: count,
  completion_tokens: count,
  cost_micros: count,
  cost_units: z.string().describe("The exact cost in units of 1e-12 EUR, as a decimal string."),
  started_at: epochMs,
  ended_at: epochMs,
});
export type UsageRequest = z.output<typeof UsageRequest>;
export const UsageRequests = list(UsageRequest);
export type UsageRequests = z.output<typeof UsageRequests>;

const apiKeyFields = {
  object: z.literal("api_key"),
  ...keyLimitFields,
  created_at: epochMs,
  updated_at: epochMs,
  revoked_at: epochMs.nullable(),
};
export const ApiKey = z.object(apiKeyFields);
export type ApiKey = z.output<typeof ApiKey>;
export const CreatedApiKey = z.object({ ...apiKeyFields, key: z.string().describe("The secret; shown only here.") });
export type CreatedApiKey = z.output<typeof CreatedApiKey>;
export const DeletedApiKey = z.object({ ...apiKeyFields, deleted: z.literal(true) });
export type DeletedApiKey = z.output<typeof DeletedApiKey>;
export const ApiKeyList = list(ApiKey);
export type ApiKeyList = z.output<typeof ApiKeyList>;

/** One key's day on one tier (GET /v1/admin/usage). */
export const AdminUsageDay = z.object({
  key_id: z.string(),
  date: z.string(),
  tier: z.string(),
  requests: count.describe(
    "Requests that reached (or were served instead of) a backend; rejected ones are counted apart.",
  ),
  rejected: count,
  prompt_tokens: count,
  cached_tokens: count,
  completion_tokens: count,
  cost_micros: count.describe("Sum of exact costs, rounded up to whole micro-euros once (not a sum of rounded rows)."),
  cost_units: z.string().describe("The exact sum in units of 1e-12 EUR, as a decimal string."),
  batch_requests: count.describe("How many of `requests` were batch lines (billed at the batch price)."),
  batch_cost_micros: count,
  batch_cost_units: z.string(),
});
export type AdminUsageDay = z.output<typeof AdminUsageDay>;
export const AdminUsageDays = list(AdminUsageDay);
export type AdminUsageDays = z.output<typeof AdminUsageDays>;

export const DeadLetters = z.object({ object: z.literal("dead_letters"), count });
export type DeadLetters = z.output<typeof DeadLetters>;
export const DeadLetterReplay = z.object({
  object: z.literal("dead_letter_replay"),
  replayed: count,
  failed: count,
  remaining: count.describe("Entries still parked after this call (failed ones and any beyond `limit`)."),
});
export type DeadLetterReplay = z.output<typeof DeadLetterReplay>;

/** A usage report refused because its request id was never admitted by this worker. */
export const RejectedUsageReport = z.object({
  report_id: z.string(),
  request_id: z.string(),
  key_id: z.string().nullable(),
  tier: z.string().nullable(),
  backend: z.string(),
  prompt_tokens: count,
  completion_tokens: count,
  reason: z.string(),
  received_at: count,
});
export type RejectedUsageReport = z.output<typeof RejectedUsageReport>;
export const RejectedUsageReports = z.object({
  object: z.literal("rejected_usage_reports"),
  count,
  data: z.array(RejectedUsageReport),
});
export type RejectedUsageReports = z.output<typeof RejectedUsageReports>;

/** One live replica (GET /v1/admin/replicas). */
export const ReplicaView = z.object({
  id: z.string(),
  url: z.string(),
  models: z.array(z.string()),
  tiers: z.array(z.string()).describe("Public tier names served through this replica's models."),
  state: ReplicaStateSchema,
  in_flight: count,
  queue_depth: count,
  kv_free_blocks: count,
  slots: count,
  served: count.describe("Requests completed since the replica registered."),
  last_seen: z.iso.datetime(),
  version: z.string(),
});
export type ReplicaView = z.output<typeof ReplicaView>;
export const ReplicaList = z
  .object({ data: z.array(ReplicaView) })
  .describe("The registry's live replicas; an empty list without a registry.");
export type ReplicaList = z.output<typeof ReplicaList>;
