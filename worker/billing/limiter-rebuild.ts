/**
 * A KeyLimiter's month of spend, rebuilt from the D1 ledger (the record of what was billed) when the
 * Durable Object has no state for the month: its storage was lost, or the month just began.
 */
import { parseUnits } from "./money";

/**
 * Rows changed this recently are returned one by one: the limiter marks them charged, so a settle of theirs
 * still in flight (the worker writes D1 and the limiter in parallel) or queued (USAGE_QUEUE retries for
 * under an hour) does not charge again what the sum already holds.
 */
export const RECENT_MS = 2 * 3600_000;

export interface MonthSnapshot {
  spentUnits: bigint;
  recent: Array<{ requestId: string; tier: string; costUnits: string }>;
}

/** `month` is UTC "YYYY-MM"; the ledger's `day` is the UTC day of the request's start, as the limiter's month is. */
export async function rebuildMonth(db: D1Database, keyId: string, month: string, now: number): Promise<MonthSnapshot> {
  const [y, m] = month.split("-").map(Number) as [number, number];
  const next = new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 7);
  const [sum, recent] = await db.batch([
    db
      .prepare(
        "SELECT CAST(COALESCE(SUM(cost_units), 0) AS TEXT) AS units FROM usage_records WHERE key_id = ? AND day >= ? AND day < ?",
      )
      .bind(keyId, `${month}-01`, `${next}-01`),
    db
      .prepare(
        "SELECT request_id, model, CAST(cost_units AS TEXT) AS cost_units FROM usage_records WHERE key_id = ? AND updated_at >= ? AND day >= ?",
      )
      .bind(keyId, now - RECENT_MS, `${month}-01`),
  ]);
  const units = (sum!.results[0] as { units: string } | undefined)?.units;
  return {
    spentUnits: parseUnits(units),
    recent: (recent!.results as Array<{ request_id: string; model: string; cost_units: string }>).map((r) => ({
      requestId: r.request_id,
      tier: r.model,
      costUnits: r.cost_units,
    })),
  };
}
