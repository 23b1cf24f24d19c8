/**
 * The caller's own key and ledger (API-key auth, mounted under /v1):
 *   GET /v1/key                 -> the plan plus this month's spend, reservations, what remains and the
 *                                  budget's state ("ok" | "low" | "spent": billing/budget.ts)
 *   GET /v1/usage/requests      ?request_id=&limit=(1..1000, 100) -> the caller's own per-request records, newest first
 * Same record shape as GET /v1/admin/usage/requests, always scoped to the presented key: a key never
 * sees another key's records, whatever it puts in the query.
 */
import type { KeyStatus, UsageRequests } from "../../contract/api-accounts";
import { factory } from "../factory";
import { monthOf } from "../billing/key-limiter";
import { usageRequests } from "../billing/ledger";
import { limiterFor } from "../billing/meter";
import { budgetState } from "../billing/budget";
import { microsToUnits, parseUnits, reservationUnits, unitsToMicros, unitsToMicrosFloor } from "../billing/money";
import { COMPLETION_SLICE_TOKENS } from "../billing/slices";
import { getTiers } from "../config/tiers";
import { badRequest } from "../errors";

export const keyRoutes = factory.createApp();

/** UTC calendar month of `now` as [start, end): budgets reset at `end`. */
export function budgetPeriod(now: number): { start: string; end: string } {
  const d = new Date(now);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
}

keyRoutes.get("/key", async (c) => {
  const account = c.get("account");
  const status = await limiterFor(c.env, account.keyId).status(account.keyId);
  const now = Date.now();
  // The limiter's month is the one its spend belongs to; at a month boundary a fresh month spent nothing yet.
  const spent = status.month === monthOf(now) ? parseUnits(status.spentUnits) : 0n;
  const reserved = parseUnits(status.reservedUnits);
  const left = microsToUnits(account.monthlyBudgetMicros) - spent - reserved;
  const period = budgetPeriod(now);
  // "low": a request on the key's cheapest chat tier that reserves a first completion slice would be
  // refused (billing/budget.ts); the same rule as the refusals, so this and the API agree.
  const tiers = getTiers(c.env.TIERS);
  const firstSliceUnits = account.tiers
    .map((t) => tiers.get(t))
    .filter((t) => t?.kind === "chat")
    .map((t) => reservationUnits(t!.pricing, 0, COMPLETION_SLICE_TOKENS))
    .reduce<bigint | null>((min, u) => (min === null || u < min ? u : min), null);
  return c.json({
    object: "key",
    id: account.keyId,
    name: account.name,
    tiers: account.tiers,
    rpm: account.rpm,
    tpm: account.tpm,
    monthly_budget_micros: account.monthlyBudgetMicros,
    spent_micros: unitsToMicros(spent),
    reserved_micros: unitsToMicros(reserved),
    // Floored, unlike every cost: never promise a micro-euro that is not there.
    remaining_micros: unitsToMicrosFloor(left),
    budget_state: budgetState(account.monthlyBudgetMicros, spent, reserved, firstSliceUnits ?? 1n),
    period_start: period.start,
    period_end: period.end,
  } satisfies KeyStatus);
});

keyRoutes.get("/usage/requests", async (c) => {
  const limitRaw = c.req.query("limit");
  const limit = limitRaw === undefined ? 100 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw badRequest("limit must be an integer from 1 to 1000.", "limit");
  const requestId = c.req.query("request_id") || undefined;
  const data = await usageRequests(c.env.DB, { keyId: c.get("account").keyId, requestId, limit });
  return c.json({ object: "list", data } satisfies UsageRequests);
});
