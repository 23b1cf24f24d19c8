/**
 * GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD — the caller's own usage, one row per tier and UTC day.
 * Defaults to the current calendar month (the budget period). Reads the D1 ledger directly, so a
 * request appears as soon as its settle() has run (unless its write fell back to the queue).
 * cost_micros is the exact per-row sum rounded up once (billing/money.ts unitsToMicros); batch_requests and
 * batch_cost_micros are the part of it that batch lines made (worker/batch/).
 */
import type { UsageDay, UsageDays } from "../../contract/api-accounts";
import { factory } from "../factory";
import { usageByDay } from "../billing/ledger";
import { badRequest } from "../errors";

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

function checkDate(v: string | undefined, param: string): string | undefined {
  if (v === undefined || v === "") return undefined;
  // Round-trip: Date.parse rolls 2026-02-30 over to March instead of refusing it.
  const ms = DATE_RE.test(v) ? Date.parse(`${v}T00:00:00Z`) : NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== v)
    throw badRequest(`${param} must be a date YYYY-MM-DD.`, param);
  return v;
}

/** Validated inclusive date range; with `defaultMonth`, a missing `from` means the 1st of this month. */
export function dateRange(
  from: string | undefined,
  to: string | undefined,
  defaultMonth: boolean,
): { from?: string; to?: string } {
  const f = checkDate(from, "from") ?? (defaultMonth ? `${new Date().toISOString().slice(0, 7)}-01` : undefined);
  const t = checkDate(to, "to");
  if (f && t && f > t) throw badRequest("from must not be after to.", "from");
  return { from: f, to: t };
}

export const usageRoutes = factory.createApp();

usageRoutes.get("/", async (c) => {
  const { from, to } = dateRange(c.req.query("from"), c.req.query("to"), true);
  const rows = await usageByDay(c.env.DB, { keyId: c.get("account").keyId, from, to });
  return c.json({
    object: "list",
    data: rows.map(
      (r): UsageDay => ({
        date: r.date,
        tier: r.tier,
        requests: r.requests,
        prompt_tokens: r.prompt_tokens,
        cached_tokens: r.cached_tokens,
        completion_tokens: r.completion_tokens,
        cost_micros: r.cost_micros,
        // The batch lines among them (billed at the batch price): interactive = the totals minus these.
        batch_requests: r.batch_requests,
        batch_cost_micros: r.batch_cost_micros,
      }),
    ),
  } satisfies UsageDays);
});
