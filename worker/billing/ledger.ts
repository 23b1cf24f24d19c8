/**
 * The usage ledger in D1: exactly one row per request id, plus the per-day aggregates /v1/usage and
 * /v1/admin/usage serve. The worker's settle is an upsert that changes only a row holding the backend's
 * report alone (worker/billing/report-merge.ts has the rule), so a retried write never double-counts.
 * Exact costs are written as decimal strings into an INTEGER column (SQLite stores them as int64)
 * and summed in SQL, then read back as TEXT so no JS number ever carries them.
 */
import { type AdminUsageDay, type UsageRequest, UsageStatus } from "../../contract/api-accounts";
import { d1WriteFault } from "./faults";
import { parseUnits, unitsToMicros } from "./money";
import type { Pricing } from "./types";

export interface UsageRecord {
  requestId: string;
  keyId: string;
  model: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Exact cost in units of 1e-12 EUR, decimal string. */
  costUnits: string;
  status: UsageStatus;
  startedAt: number;
  endedAt: number;
  /** The tier's price at admission (kept on the row: a later backend report is priced with it). */
  pricing?: Pricing;
  /** For the limiter only: the ledger row's cost before a report raised it (KeyLimiter.settle). */
  previousUnits?: string;
  /** What a client received after a backend failure: no backend report raises it (SettleRequest). */
  deliveredFinal?: boolean;
  /** The batch this request was a line of (absent: an interactive request). */
  batchId?: string;
}

export const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export async function insertUsage(db: D1Database, r: UsageRecord, now = Date.now()): Promise<void> {
  // The soak's D1 outage (billing/faults.ts): disarmed unless a FAULTS=1 stack armed it.
  const injected = d1WriteFault();
  if (injected) throw injected;
  await db
    .prepare(WORKER_SETTLE_SQL)
    .bind(
      r.requestId,
      r.keyId,
      r.model,
      dayOf(r.startedAt),
      r.promptTokens,
      r.cachedTokens,
      r.completionTokens,
      r.costUnits,
      r.status,
      r.startedAt,
      r.endedAt,
      now,
      r.pricing?.input ?? null,
      r.pricing?.cached_input ?? null,
      r.pricing?.output ?? null,
      now,
      r.deliveredFinal ? 1 : 0,
      r.batchId ?? null,
    )
    .run();
}

/**
 * The worker's settle (merge rule in worker/billing/report-merge.ts). A row that exists changes only when it holds
 * the backend's report alone (status 'recovered'): the status becomes the worker's; the tokens and cost are
 * the worker's unless the report's cost more, whose excess is then `reconciled_units`. A zero-cost
 * `rejected` row changes too: only a batch line reuses a request id after a refusal (a rate-limited line
 * is retried under its one ledger id, worker/batch/), and its later run is what is billed. SQLite
 * evaluates every SET expression against the old row.
 */
const WORKER_SETTLE_SQL = `INSERT INTO usage_records
  (request_id, key_id, model, day, prompt_tokens, cached_tokens, completion_tokens, cost_units, status, started_at, ended_at, recorded_at,
   price_input, price_cached_input, price_output, updated_at, delivered_final, batch_id)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (request_id) DO UPDATE SET
    status = excluded.status,
    prompt_tokens = IIF(excluded.delivered_final OR excluded.cost_units >= usage_records.cost_units, excluded.prompt_tokens, usage_records.prompt_tokens),
    cached_tokens = IIF(excluded.delivered_final OR excluded.cost_units >= usage_records.cost_units, excluded.cached_tokens, usage_records.cached_tokens),
    completion_tokens = IIF(excluded.delivered_final OR excluded.cost_units >= usage_records.cost_units, excluded.completion_tokens, usage_records.completion_tokens),
    reconciled_units = IIF(excluded.delivered_final OR excluded.cost_units >= usage_records.cost_units, 0, usage_records.cost_units - excluded.cost_units),
    cost_units = IIF(excluded.delivered_final, excluded.cost_units, MAX(excluded.cost_units, usage_records.cost_units)),
    delivered_final = excluded.delivered_final,
    price_input = excluded.price_input, price_cached_input = excluded.price_cached_input, price_output = excluded.price_output,
    updated_at = excluded.updated_at,
    batch_id = COALESCE(excluded.batch_id, usage_records.batch_id)
  WHERE usage_records.status IN ('recovered', 'rejected')`;

/** Shape check for records coming back from the queue (the edge of this module's trust). */
export function isUsageRecord(v: unknown): v is UsageRecord {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  const int = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  return (
    typeof r.requestId === "string" &&
    r.requestId.length > 0 &&
    typeof r.keyId === "string" &&
    typeof r.model === "string" &&
    int(r.promptTokens) &&
    int(r.cachedTokens) &&
    int(r.completionTokens) &&
    typeof r.costUnits === "string" &&
    /^\d+$/.test(r.costUnits) &&
    UsageStatus.options.includes(r.status as UsageStatus) &&
    int(r.startedAt) &&
    int(r.endedAt) &&
    (r.deliveredFinal === undefined || typeof r.deliveredFinal === "boolean") &&
    (r.batchId === undefined || typeof r.batchId === "string")
  );
}

export interface UsageFilter {
  keyId?: string;
  from?: string; // YYYY-MM-DD inclusive
  to?: string; // YYYY-MM-DD inclusive
}

/** One key's day on one tier; cost_micros is the exact sum rounded up once (money.ts unitsToMicros). */
export async function usageByDay(db: D1Database, f: UsageFilter): Promise<AdminUsageDay[]> {
  const where: string[] = [];
  const args: string[] = [];
  if (f.keyId) where.push("key_id = ?"), args.push(f.keyId);
  if (f.from) where.push("day >= ?"), args.push(f.from);
  if (f.to) where.push("day <= ?"), args.push(f.to);
  const { results } = await db
    .prepare(
      `SELECT key_id, day, model,
         SUM(status != 'rejected') AS requests, SUM(status = 'rejected') AS rejected,
         SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
         SUM(completion_tokens) AS completion_tokens, CAST(SUM(cost_units) AS TEXT) AS cost_units,
         SUM(status != 'rejected' AND batch_id IS NOT NULL) AS batch_requests,
         CAST(SUM(IIF(batch_id IS NOT NULL, cost_units, 0)) AS TEXT) AS batch_cost_units
       FROM usage_records ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       GROUP BY key_id, day, model ORDER BY day, key_id, model`,
    )
    .bind(...args)
    .all<{
      key_id: string;
      day: string;
      model: string;
      requests: number;
      rejected: number;
      prompt_tokens: number;
      cached_tokens: number;
      completion_tokens: number;
      cost_units: string;
      batch_requests: number;
      batch_cost_units: string;
    }>();
  return results.map((r): AdminUsageDay => {
    const units = parseUnits(r.cost_units);
    const batchUnits = parseUnits(r.batch_cost_units);
    return {
      key_id: r.key_id,
      date: r.day,
      tier: r.model,
      requests: r.requests,
      rejected: r.rejected,
      prompt_tokens: r.prompt_tokens,
      cached_tokens: r.cached_tokens,
      completion_tokens: r.completion_tokens,
      cost_micros: unitsToMicros(units),
      cost_units: units.toString(),
      batch_requests: r.batch_requests,
      batch_cost_micros: unitsToMicros(batchUnits),
      batch_cost_units: batchUnits.toString(),
    };
  });
}

/** Per-request records, newest first: the audit view behind GET /v1/admin/usage/requests. */
export async function usageRequests(
  db: D1Database,
  f: { keyId?: string; requestId?: string; limit: number },
): Promise<UsageRequest[]> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (f.keyId) where.push("key_id = ?"), args.push(f.keyId);
  if (f.requestId) where.push("request_id = ?"), args.push(f.requestId);
  const { results } = await db
    .prepare(
      `SELECT request_id, key_id, model, status, prompt_tokens, cached_tokens, completion_tokens,
         CAST(cost_units AS TEXT) AS cost_units, started_at, ended_at
       FROM usage_records ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY started_at DESC LIMIT ?`,
    )
    .bind(...args, f.limit)
    .all<Omit<UsageRequest, "tier" | "cost_micros"> & { model: string }>();
  return results.map(({ model, ...r }) => {
    const units = parseUnits(r.cost_units);
    return { ...r, tier: model, cost_micros: unitsToMicros(units), cost_units: units.toString() };
  });
}
